//! `retry()` and `prune()`: changes to task state that users may ask for but not write
//! themselves (state columns are the worker's). Each function reads with the caller's
//! privileges, so row-level security decides which tasks it may touch, then writes with the
//! bootstrap superuser's, as a SECURITY DEFINER function would.

use pgrx::datum::{DatumWithOid, Interval};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use super::wake::wake_worker_at_commit;

/// Runs `f` as the bootstrap superuser, then restores the caller's identity (also on error:
/// the transaction's abort restores it).
fn as_superuser<R>(f: impl FnOnce() -> R) -> R {
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let result = f();
    unsafe { pg_sys::SetUserIdAndSecContext(user, context) };
    result
}

fn update(sql: &str, args: &[DatumWithOid]) -> usize {
    Spi::connect_mut(|c| c.update(sql, None, args).map(|t| t.len()))
        .unwrap_or_else(|e| error!("agent_loop: {e}"))
}

/// Re-queues a failed or cancelled task. It resumes from its last committed step with
/// `max_steps` more steps (by default, as many as it was first given) and a new deadline
/// `timeout` from now (by default none).
#[pg_extern(volatile, parallel_unsafe)]
fn retry(
    task_id: i64,
    max_steps: default!(Option<i32>, "NULL"),
    timeout: default!(Option<Interval>, "NULL"),
) -> bool {
    if max_steps.is_some_and(|n| n < 1) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_steps must be at least 1"
        );
    }
    let status: Option<String> = Spi::get_one_with_args(
        "SELECT status::text FROM agent_loop.tasks WHERE id = $1",
        &[task_id.into()],
    )
    .unwrap_or(None);
    match status.as_deref() {
        None => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
                format!("task {task_id} not found")
            );
        }
        Some("failed" | "cancelled") => {}
        Some(other) => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("task {task_id} is {other}; only failed or cancelled tasks can be retried")
            );
        }
    }
    let requeued = as_superuser(|| {
        update(
            "UPDATE agent_loop.tasks
                SET status = 'queued', error_code = NULL, error_message = NULL, result = NULL,
                    finished_at = NULL, cancel_requested_at = NULL, run_after = now(),
                    max_steps = steps_done + coalesce($2, max_steps),
                    deadline = now() + $3
              WHERE id = $1 AND status IN ('failed', 'cancelled')",
            &[task_id.into(), max_steps.into(), timeout.into()],
        )
    });
    if requeued > 0 {
        wake_worker_at_commit();
    }
    requeued > 0
}

/// Deletes the caller's tasks (all tasks, for agent_loop_admin) that ended more than
/// `older_than` ago, with their steps; returns how many. Lessons stay in `reflections`.
#[pg_extern(volatile, parallel_unsafe)]
fn prune(older_than: default!(Interval, "'7 days'")) -> i64 {
    let ids: Vec<i64> = Spi::connect(|c| {
        c.select(
            "SELECT id FROM agent_loop.tasks
              WHERE status IN ('succeeded', 'failed', 'cancelled')
                AND finished_at < now() - $1",
            None,
            &[older_than.into()],
        )?
        .map(|row| row.get::<i64>(1).map(Option::unwrap_or_default))
        .collect::<Result<Vec<_>, _>>()
    })
    .unwrap_or_else(|e| error!("agent_loop: {e}"));
    if ids.is_empty() {
        return 0;
    }
    as_superuser(|| {
        update(
            "DELETE FROM agent_loop.steps WHERE task_id = ANY ($1)",
            &[ids.clone().into()],
        );
        update(
            "DELETE FROM agent_loop.tasks WHERE id = ANY ($1)",
            &[ids.into()],
        ) as i64
    })
}
