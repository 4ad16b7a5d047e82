//! The launcher: starts and restarts the per-database workers.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::shmem;
use crate::settings;

/// How often the launcher checks that every database with the extension has its workers.
const LAUNCHER_NAPTIME: Duration = Duration::from_secs(10);

pub fn register_launcher() {
    BackgroundWorkerBuilder::new("agent_loop launcher")
        .set_type("agent_loop launcher")
        .set_library("agent_loop")
        .set_function("agent_loop_launcher_main")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Starts a worker for `database` (from the launcher or from a backend). A duplicate exits
/// by itself, so a race between two starters is harmless.
pub fn start_worker(database: pg_sys::Oid) {
    let started = BackgroundWorkerBuilder::new(&format!(
        "agent_loop worker for database {}",
        database.to_u32()
    ))
    .set_type("agent_loop worker")
    .set_library("agent_loop")
    .set_function("agent_loop_worker_main")
    .set_argument(database.into_datum())
    .enable_spi_access()
    .set_restart_time(None)
    .load_dynamic();
    if started.is_err() {
        warning!(
            "could not start an agent_loop worker for database {}: no background worker slot is free",
            database.to_u32()
        );
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn agent_loop_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // No database: the launcher reads only the shared catalog pg_database.
    BackgroundWorker::connect_worker_to_spi(None, None);
    loop {
        for database in crate::pg::catalog::connectable_databases() {
            if !shmem::known_without_extension(database)
                && shmem::claim_worker_start(database, settings::workers_per_database())
            {
                start_worker(database);
            }
        }
        if !BackgroundWorker::wait_latch(Some(LAUNCHER_NAPTIME)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            crate::pg::backend::reload_config();
        }
    }
}
