//! Catalog reads that cannot go through SPI: the launcher is connected to no database.

use pgrx::pg_sys;

/// Databases that accept connections and are not templates, read from pg_database the way
/// the autovacuum launcher does. Runs its own transaction.
pub fn connectable_databases() -> Vec<pg_sys::Oid> {
    let mut databases = Vec::new();
    // SAFETY: a heap scan of a shared catalog inside a transaction of its own, as the
    // autovacuum launcher does; each tuple is read before the next is fetched.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        let relation = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as _);
        let scan = pg_sys::table_beginscan_catalog(relation, 0, std::ptr::null_mut());
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let row = &*(pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_database);
            if row.datallowconn && !row.datistemplate {
                databases.push(row.oid);
            }
        }
        pg_sys::heap_endscan(scan);
        pg_sys::table_close(relation, pg_sys::AccessShareLock as _);
        pg_sys::CommitTransactionCommand();
    }
    databases
}
