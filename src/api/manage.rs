//! `retry()` and `prune()`: changes to task state that users may ask for but not write
//! themselves (state columns are the worker's). Each function reads with the caller's
//! privileges, so row-level security decides which tasks it may touch, then writes with the
//! bootstrap superuser's, as a SECURITY DEFINER function would.

use agent_loop_core::lifecycle::TaskStatus;
use pgrx::datum::{DatumWithOid, Interval};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use super::wake::wake_worker_at_commit;
pub(super) use crate::pg::txn::as_superuser;
use crate::pg::OrRaise;

fn update(sql: &str, args: &[DatumWithOid]) -> usize {
    Spi::connect_mut(|c| c.update(sql, None, args).map(|t| t.len())).or_raise()
}

/// The ids (first column) a query returns, run with the caller's privileges: the rows
/// row-level security lets the caller act on.
pub(super) fn ids_visible(sql: &str, args: &[DatumWithOid]) -> Vec<i64> {
    Spi::connect(|c| {
        c.select(sql, None, args)?
            .map(|row| row.get::<i64>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
    })
    .or_raise()
}

/// Re-queues a failed or cancelled task. It resumes from its last committed step with
/// `max_steps` more steps (by default, as many as it was first given) and a new deadline
/// `timeout` from now (by default none).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
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
        "SELECT (SELECT status::text FROM agent_loop.tasks WHERE id = $1)",
        &[task_id.into()],
    )
    .or_raise();
    match status.as_deref().map(|s| (s, TaskStatus::parse(s))) {
        None => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
                format!("task {task_id} not found")
            );
        }
        Some((_, Some(status))) if status.can_retry() => {}
        Some((other, _)) => {
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
#[search_path(pg_catalog, pg_temp)]
fn prune(older_than: default!(Interval, "'7 days'")) -> i64 {
    let ids = ids_visible(
        "SELECT id FROM agent_loop.tasks
          WHERE status IN ('succeeded', 'failed', 'cancelled')
            AND finished_at < now() - $1",
        &[older_than.into()],
    );
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

/// Deletes `owner`'s lessons that contain `containing` (all when NULL) and that the caller may
/// see (row-level security: its own, or any for agent_loop_admin); returns how many. Behind
/// forget(): PUBLIC has no DELETE on reflections, which would let any role lock the table.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _delete_lessons(owner: pg_sys::Oid, containing: Option<&str>) -> i64 {
    let keys = ids_visible(
        "SELECT id FROM agent_loop.reflections r
          WHERE r.owner = $1::regrole
            AND ($2::text IS NULL
                 OR r.lesson_tsv @@ pg_catalog.plainto_tsquery('english', $2)
                 OR pg_catalog.strpos(pg_catalog.lower(r.lesson), pg_catalog.lower($2)) > 0)",
        &[owner.into(), containing.into()],
    );
    if keys.is_empty() {
        return 0;
    }
    as_superuser(|| {
        update(
            "DELETE FROM agent_loop.reflections WHERE owner = $1::regrole AND id = ANY ($2)",
            &[owner.into(), keys.into()],
        ) as i64
    })
}

/// Deletes the registered tool `name` if the caller manages it (it registered the tool, or is
/// an agent_loop_admin); built-in tools stay. Behind unregister_tool(): PUBLIC has no DELETE
/// on tools, which would let any role lock the table.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _delete_tool(name: &str) -> bool {
    let manages: bool = Spi::get_one_with_args(
        "SELECT EXISTS (SELECT FROM agent_loop.tools t
                         WHERE t.name = $1 AND t.function IS NOT NULL
                           AND (t.registered_by = current_user::regrole
                                OR pg_catalog.pg_has_role('agent_loop_admin', 'MEMBER')))",
        &[name.into()],
    )
    .or_raise()
    .unwrap_or(false);
    manages
        && as_superuser(|| {
            update(
                "DELETE FROM agent_loop.tools WHERE name = $1 AND function IS NOT NULL",
                &[name.into()],
            )
        }) > 0
}
