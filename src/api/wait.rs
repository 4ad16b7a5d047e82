//! `wait()`: block in the server until a task ends (or waits for a human's approval), sleeping
//! on a condition variable the worker broadcasts after each such commit. No client-side polling.

use std::time::{Duration, Instant};

use agent_loop_core::lifecycle::TaskStatus;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::pg::shmem;
use crate::pg::txn::execute;

/// A sleep never lasts longer than this, so a missed broadcast (a worker killed between its
/// commit and its broadcast) costs at most this much.
const RECHECK: Duration = Duration::from_secs(1);

/// Waits until task `task_id` has ended or waits for approval, or `timeout_ms` has passed; true
/// unless the time ran out. The SQL function `wait()` wraps this and returns the task's row.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _wait_for_task(task_id: i64, timeout_ms: f64) -> bool {
    if crate::pg::backend::snapshot_is_fixed() {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "wait() needs READ COMMITTED isolation",
            "Under REPEATABLE READ or SERIALIZABLE the task's row never changes within the transaction."
        );
    }
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_ms.max(0.0) / 1000.0);
    loop {
        shmem::prepare_wait(task_id);
        let (status, submitted_here) = task_state(task_id);
        if TaskStatus::parse(&status).is_some_and(TaskStatus::settles_wait) {
            shmem::cancel_wait();
            return true;
        }
        if submitted_here {
            shmem::cancel_wait();
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("task {task_id} was submitted in this transaction"),
                "Commit first: no worker can see the task before that."
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            shmem::cancel_wait();
            return false;
        }
        shmem::sleep_on_task(task_id, left.min(RECHECK).as_millis().max(1) as i64);
    }
}

/// The task's status as of now (a fresh snapshot each call), and whether this very transaction
/// inserted it.
fn task_state(task_id: i64) -> (String, bool) {
    let row = Spi::connect(|client| {
        // Read-write SPI takes a new snapshot (select() on a plain query would reuse the
        // statement's); txn::execute does so without giving wait()'s transaction an ID.
        let table = execute(
            client,
            // A waiting task being cancelled has not settled: the worker ends it next.
            "SELECT CASE WHEN cancel_requested_at IS NOT NULL AND status::text LIKE 'waiting%'
                         THEN 'cancelling' ELSE status::text END,
                    xmin::text
               FROM agent_loop.tasks WHERE id = $1",
            Some(1),
            &[task_id.into()],
        )?;
        if table.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let row = table.first();
        Ok(Some((row.get::<String>(1)?, row.get::<String>(2)?)))
    });
    match row {
        Ok(Some((status, xmin))) => {
            let xid: u32 = xmin.and_then(|x| x.parse().ok()).unwrap_or(0);
            let mine = crate::pg::backend::is_own_transaction(xid);
            (status.unwrap_or_default(), mine)
        }
        Ok(None) => {
            shmem::cancel_wait();
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
                format!("task {task_id} not found")
            );
        }
        Err(e) => {
            shmem::cancel_wait();
            error!("reading task {task_id}: {e}");
        }
    }
}
