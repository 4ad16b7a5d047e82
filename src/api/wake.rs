//! Waking a worker when a submit (or cancel) commits, and starting one where none runs.

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;
use pgrx::{register_xact_callback, PgXactCallbackEvent};

use crate::pg::shmem;
use crate::{settings, worker};

/// Whether this transaction already asked for a wake-up at commit.
static WAKE_PENDING: AtomicBool = AtomicBool::new(false);

/// Called by submit() and cancel(): the database's worker is woken the moment this transaction
/// commits (not before: it could not see the row yet), and started now if it is not running.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _wake_worker() {
    if !shmem::available() {
        warning!(
            "agent_loop is not in shared_preload_libraries: no worker will run this task \
             until the server is restarted with it"
        );
        return;
    }
    let database = crate::pg::backend::database();
    if shmem::claim_worker_start(database, settings::workers_per_database()) {
        worker::start_worker(database);
    }
    wake_worker_at_commit();
}

/// Sets the worker's latch when the current transaction commits (once per transaction).
pub fn wake_worker_at_commit() {
    let database = crate::pg::backend::database();
    if WAKE_PENDING.swap(true, Ordering::Relaxed) {
        return;
    }
    register_xact_callback(PgXactCallbackEvent::Commit, move || {
        WAKE_PENDING.store(false, Ordering::Relaxed);
        shmem::wake_worker(database);
    });
    register_xact_callback(PgXactCallbackEvent::Abort, || {
        WAKE_PENDING.store(false, Ordering::Relaxed);
    });
}
