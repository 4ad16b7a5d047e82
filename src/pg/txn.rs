//! Transactions, subtransactions, role switches and settings.
//!
//! A PostgreSQL ERROR raised inside must not kill the worker: it is caught, the transaction is
//! rolled back, and the caller gets it as an [`Error`] with its SQLSTATE and decides what the
//! failure means for the task.

use std::ffi::CStr;
use std::panic::AssertUnwindSafe;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::{SpiClient, SpiResult, SpiTupleTable};
use pgrx::{PgOid, PgTryBuilder};

use super::error::Error;

/// Runs `body` in its own transaction. It commits when `body` returns `Ok`; when `body`
/// returns `Err`, raises an ERROR or panics, the transaction is rolled back and the error
/// returned.
pub fn in_transaction<R, E: Into<Error>>(
    body: impl FnOnce() -> Result<R, E> + std::panic::UnwindSafe,
) -> Result<R, Error> {
    // SAFETY: called outside any transaction (the worker's loop, an executor between jobs);
    // every path below ends the transaction it starts.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    PgTryBuilder::new(|| match body() {
        Ok(result) => {
            // SAFETY: the snapshot pushed and the transaction started above.
            unsafe {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            Ok(result)
        }
        Err(error) => {
            // SAFETY: aborting the transaction started above also pops its snapshot.
            unsafe { pg_sys::AbortCurrentTransaction() };
            Err(error.into())
        }
    })
    .catch_others(|error| {
        // SAFETY: as above, after an ERROR.
        unsafe { pg_sys::AbortCurrentTransaction() };
        Err(error.into())
    })
    .execute()
}

/// Runs `body` in a subtransaction of the current transaction: released when `body` returns
/// `Ok`; rolled back when it returns `Err`, raises an ERROR or panics, the error coming back
/// with its SQLSTATE. The enclosing transaction goes on either way.
pub fn in_subtransaction<R, E: Into<Error>>(
    body: impl FnOnce() -> Result<R, E> + std::panic::UnwindSafe,
) -> Result<R, Error> {
    subtransaction(|| body().map_err(Into::into), |result| result.is_ok())
}

/// Begins a subtransaction, runs `body` catching errors and panics, then releases it if `keep`
/// (which sees the result, and may clean up first) says so, else rolls it back.
fn subtransaction<R>(
    body: impl FnOnce() -> Result<R, Error> + std::panic::UnwindSafe,
    keep: impl FnOnce(&Result<R, Error>) -> bool,
) -> Result<R, Error> {
    // SAFETY: inside a transaction (every caller is); the memory context and resource owner
    // are put back below, as PL/pgSQL does around its own subtransactions.
    let (memory_context, resource_owner) =
        unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    // SAFETY: as above; ended below whatever `body` does.
    unsafe { pg_sys::BeginInternalSubTransaction(std::ptr::null()) };
    let result = PgTryBuilder::new(body)
        .catch_others(|error| Err(error.into()))
        .execute();
    // SAFETY: ends the subtransaction begun above, then restores what it changed.
    unsafe {
        if keep(&result) {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(memory_context);
        pg_sys::CurrentResourceOwner = resource_owner;
    }
    result
}

/// Runs `statement` read-write (a fresh snapshot, writes allowed) without first giving the
/// transaction an ID. pgrx's `SpiClient::update` asks for one so that SPI runs read-write; a
/// transaction that then writes nothing (a claim that found no task, a read-only tool call)
/// still writes a commit record and, with synchronous_commit on, waits for a WAL flush. A plan
/// prepared as mutating runs read-write by itself, and the ID is assigned at the first write.
pub fn execute<'conn>(
    client: &SpiClient<'conn>,
    statement: &str,
    limit: Option<i64>,
    args: &[DatumWithOid],
) -> SpiResult<SpiTupleTable<'conn>> {
    let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
    let plan = client.prepare_mut(statement, &types)?;
    client.select(&plan, limit, args)
}

/// Runs `f` as the bootstrap superuser with a pinned `search_path`, then restores the caller's
/// identity and settings (also on error: the transaction's abort restores them). Nothing `f`
/// runs may resolve a name through the caller's search_path: with it, a `mallory.now()` or an
/// operator of the caller's would run with superuser rights.
pub fn as_superuser<R>(f: impl FnOnce() -> R) -> R {
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    // SAFETY: reads, then changes, the current user for this transaction; restored below, and
    // by the transaction's abort on error.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let result = with_local_settings(&[(c"search_path", PINNED_SEARCH_PATH)], f);
    // SAFETY: the identity read above.
    unsafe { pg_sys::SetUserIdAndSecContext(user, context) };
    result
}

/// Lets the current transaction commit without waiting for its WAL to reach disk, like
/// `SET LOCAL synchronous_commit = off`.
pub fn commit_without_flush() {
    set_local(c"synchronous_commit", c"off");
}

/// The `search_path` of every statement that runs with the worker's or the bootstrap user's
/// rights: nothing a tenant can create is on it (`pg_temp` last, so that it is never searched
/// first, and never for functions or operators).
pub const PINNED_SEARCH_PATH: &CStr = c"pg_catalog, pg_temp";

/// Pins the worker's own session: its statements resolve names only in pg_catalog (every one
/// of them qualifies agent_loop's), give up on a lock after `lock_timeout_ms` (a lock a tenant
/// holds on its own task row delays that task's step, which is tried again, and nobody else's),
/// and its
/// `application_name` names no task or tool. Run at start and after each reload; tool calls
/// put it back (`as_role_in_subtransaction`). Needs a transaction.
pub fn pin_worker_session(lock_timeout_ms: i32) {
    let lock_timeout = std::ffi::CString::new(format!("{lock_timeout_ms}ms")).unwrap_or_default();
    set_for_session(c"application_name", c"agent_loop worker");
    set_for_session(c"search_path", PINNED_SEARCH_PATH);
    set_for_session(c"lock_timeout", &lock_timeout);
    super::backend::report_idle();
}

/// Runs `body` with each setting of `settings` (name, value) in force, then puts back the values
/// they had; like `SET LOCAL`, an error inside leaves nothing behind once the transaction rolls
/// back.
pub fn with_local_settings<R>(settings: &[(&CStr, &CStr)], body: impl FnOnce() -> R) -> R {
    let previous: Vec<_> = settings
        .iter()
        .map(|(name, value)| {
            // SAFETY: the setting exists (missing_ok = false raises otherwise); the returned
            // string is copied before anything can change it.
            let before =
                unsafe { CStr::from_ptr(pg_sys::GetConfigOption(name.as_ptr(), false, false)) }
                    .to_owned();
            set_local(name, value);
            (*name, before)
        })
        .collect();
    let result = body();
    for (name, before) in previous {
        set_local(name, &before);
    }
    result
}

/// Like `SET LOCAL name = value`, without SPI: undone when the transaction (or the
/// subtransaction it was set in) rolls back.
pub fn set_local(name: &CStr, value: &CStr) {
    set(name, value, pg_sys::GucAction::GUC_ACTION_LOCAL);
}

/// Sets `name` for the rest of the session, like `SET` (undone if the transaction rolls back).
pub fn set_for_session(name: &CStr, value: &CStr) {
    set(name, value, pg_sys::GucAction::GUC_ACTION_SET);
}

fn set(name: &CStr, value: &CStr, action: pg_sys::GucAction::Type) {
    // SAFETY: NUL-terminated strings; a bad value raises an ERROR like SET would.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

extern "C" {
    // utils/timeout.h is not in pgrx's bindings. Neither function raises an error in use.
    fn enable_timeout_after(id: u32, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: u32, keep_indicator: bool);
}
/// `TimeoutId::STATEMENT_TIMEOUT` in PostgreSQL 15's utils/timeout.h (a shape test reads the
/// header to check it).
const STATEMENT_TIMEOUT: u32 = 3;

/// How a subtransaction ends when `body` succeeds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnSuccess {
    Keep,
    /// Roll back even on success: for read-only work, so no setting it made leaks out.
    Discard,
}

/// Runs `body` in a subtransaction as role `owner` (never the worker's superuser rights), in a
/// security-restricted operation, with a statement timeout. Errors roll the subtransaction
/// back and come back; the enclosing transaction goes on.
///
/// The tenant's code sees the database's own `search_path` and `lock_timeout`, not the
/// worker's, and leaves the worker's session as it found it: every setting it changed, even
/// for the session (`set_config(..., false)`), is undone at the end, as are its session-level
/// advisory locks and prepared statements, which outlive a subtransaction. (A
/// security-restricted operation cannot create temporary objects, LISTEN, DISCARD, open
/// cursors WITH HOLD or change role.)
pub fn as_role_in_subtransaction<R>(
    owner: pg_sys::Oid,
    timeout_ms: i32,
    on_success: OnSuccess,
    body: impl FnOnce() -> R + std::panic::UnwindSafe,
) -> Result<R, Error> {
    let (mut saved_user, mut saved_context) = (pg_sys::InvalidOid, 0);
    // SAFETY: writes the two values it is given.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context) };
    let defaults = [c"search_path", c"lock_timeout"].map(|name| (name, reset_value(name)));
    let nest_level = std::cell::Cell::new(0);
    subtransaction(
        AssertUnwindSafe(|| {
            // SAFETY: inside a transaction; the level is closed below whatever happens.
            nest_level.set(unsafe { pg_sys::NewGUCNestLevel() });
            for (name, value) in &defaults {
                set_local(name, value);
            }
            // SAFETY: the role and the timeout are undone in `keep` below, on every path.
            unsafe {
                pg_sys::SetUserIdAndSecContext(
                    owner,
                    saved_context
                        | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                        | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
                );
                enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
            }
            Ok(body())
        }),
        |result| {
            // SAFETY: undoes what the body's start did, inside the subtransaction still open.
            unsafe {
                disable_timeout(STATEMENT_TIMEOUT, false);
                if nest_level.get() > 0 {
                    // SAFETY: the level opened above; deeper ones an error left open (a
                    // function with SET clauses) are closed with it.
                    pg_sys::AtEOXact_GUC(false, nest_level.get());
                }
                pg_sys::LockReleaseSession(pg_sys::USER_LOCKMETHOD as _);
                pg_sys::DropAllPreparedStatements();
                // Aborting a subtransaction restores the user by itself; releasing one does not.
                if result.is_ok() {
                    pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
                }
            }
            result.is_ok() && on_success == OnSuccess::Keep
        },
    )
}

/// A setting's default for this database and role, whatever the session set since.
pub fn reset_value(name: &CStr) -> std::ffi::CString {
    // SAFETY: the setting exists (built in); the string is copied at once.
    unsafe { CStr::from_ptr(pg_sys::GetConfigOptionResetString(name.as_ptr())) }.to_owned()
}

/// How many statements `sql` holds, by PostgreSQL's own parser (raises a syntax error as an
/// ERROR). Text a tenant wrote and the worker wraps (`accept_if`, `sql_query`) must stay one
/// statement: SPI would run every statement of a string.
pub fn statement_count(sql: &str) -> usize {
    let Ok(text) = std::ffi::CString::new(sql) else {
        return 0;
    };
    // SAFETY: the parser reads the NUL-terminated string and returns a palloc'd list (NIL, a
    // null pointer, when empty) in the current memory context.
    let list =
        unsafe { pg_sys::raw_parser(text.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT) };
    if list.is_null() {
        0
    } else {
        // SAFETY: a non-null List the parser just returned.
        unsafe { (*list).length as usize }
    }
}
