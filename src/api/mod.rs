//! SQL functions written in Rust. The rest of the API (submit, cancel, trace, add_model,
//! register_tool, the views) is plain SQL in `sql/api.sql`.

mod manage;
mod trace;
mod wait;
mod wake;

use pgrx::prelude::*;

use crate::pg::txn::{reset_value, statement_count, with_local_settings};
use crate::pg::{shmem, Error, OrRaise};

/// The `models.provider` values this build speaks: the core's registry of wire formats.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _providers() -> Vec<String> {
    agent_loop_core::model::provider_names()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// JSON Schema of a tool's arguments from its signature (see `register_tool`).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _parameters_schema(signature: pgrx::JsonB) -> pgrx::JsonB {
    let args = agent_loop_core::tools::SqlArg::from_signature(&signature.0)
        .map_err(|e| Error::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, e))
        .or_raise();
    pgrx::JsonB(agent_loop_core::tools::parameters_schema(&args))
}

/// Plans a task's `accept_if` expression without running it (EXPLAIN: parse analysis, planning
/// and the executor's privilege checks), so submit() refuses a typo, an unknown column or a
/// table the caller may not read at once, with its own SQLSTATE. Names resolve as they will in
/// the worker: with the database's default search_path, not submit()'s.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _prepare_check(accept_if: &str) {
    use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
    let statement = agent_loop_core::tools::accept_if_statement(accept_if);
    let explain = format!("EXPLAIN (COSTS OFF) {statement}");
    let default_path = reset_value(c"search_path");
    let prepared = pgrx::PgTryBuilder::new(|| {
        if statement_count(&statement) != 1 {
            return Err((
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "it must be one expression, not several statements".to_owned(),
            ));
        }
        with_local_settings(&[(c"search_path", default_path.as_c_str())], || {
            // Stand-in values: NULLs would let the planner fold the expression (and the tables
            // it reads, with their privilege checks) away.
            let (answer, output) = ("0", pgrx::JsonB(serde_json::json!({})));
            Spi::connect_mut(|client| {
                client
                    .update(&explain, None, &[answer.into(), output.into()])
                    .map(drop)
            })
        })
        .map_err(|e| {
            (
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                e.to_string(),
            )
        })
    })
    .catch_others(|error| match error {
        CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
            Err((report.sql_error_code(), report.message().to_owned()))
        }
        CaughtError::RustPanic { ereport, .. } => {
            Err((ereport.sql_error_code(), ereport.message().to_owned()))
        }
    })
    .execute();
    if let Err((code, message)) = prepared {
        ErrorReport::new(code, format!("accept_if is not usable: {message}"), "submit")
            .set_hint("accept_if is a boolean SQL expression; $1 is the answer (text), $2 the structured output (jsonb)")
            .report(PgLogLevel::ERROR);
    }
}

/// How deeply arrays and objects nest in a JSON text (see `_check_new_task`).
#[pg_extern(immutable, parallel_safe, strict)]
#[search_path(pg_catalog, pg_temp)]
fn _json_depth(json: &str) -> i32 {
    agent_loop_core::schema::nesting_depth(json).min(i32::MAX as usize) as i32
}

/// The tool calls running now in this database's workers, of the tasks the caller may see
/// (the `tool_activity` view). `pg_stat_activity` shows a worker's statement only to
/// superusers and pg_read_all_stats: it is read with the bootstrap user's rights, and each
/// row kept only if row-level security lets the caller see its task.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _tool_activity() -> TableIterator<
    'static,
    (
        name!(task_id, i64),
        name!(step, i32),
        name!(tool, String),
        name!(pid, i32),
        name!(running_for, Option<pgrx::datum::Interval>),
        name!(wait_event_type, Option<String>),
        name!(wait_event, Option<String>),
        name!(query_id, Option<i64>),
        name!(query, Option<String>),
    ),
> {
    type Row = (
        i64,
        i32,
        String,
        i32,
        Option<pgrx::datum::Interval>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    // "Now": a fresh read, not the statistics snapshot this transaction took before.
    crate::pg::backend::clear_stats_snapshot();
    let rows: Vec<Row> = manage::as_superuser(|| {
        Spi::connect(|c| {
            c.select(
                r"SELECT m[1]::int8, m[2]::int4, m[3], a.pid, clock_timestamp() - a.state_change,
                         a.wait_event_type, a.wait_event, a.query_id, a.query
                    FROM pg_stat_activity a,
                         regexp_match(a.query, '^/\* agent_loop task=([0-9]+) step=([0-9]+) tool=(\w*) \*/') m
                   WHERE a.backend_type IN ('agent_loop worker', 'agent_loop executor')
                     AND a.state = 'active'
                     AND a.datname = current_database()",
                None,
                &[],
            )?
            .map(|r| {
                Ok((
                    r.get(1)?.unwrap_or_default(),
                    r.get(2)?.unwrap_or_default(),
                    r.get(3)?.unwrap_or_default(),
                    r.get(4)?.unwrap_or_default(),
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })
            .collect::<Result<Vec<Row>, pgrx::spi::Error>>()
        })
        .or_raise()
    });
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let visible = match ids.is_empty() {
        true => Vec::new(),
        false => manage::ids_visible(
            "SELECT id FROM agent_loop.tasks WHERE id = ANY ($1)",
            &[ids.into()],
        ),
    };
    TableIterator::new(rows.into_iter().filter(move |r| visible.contains(&r.0)))
}

/// One row per running worker of this server (the `workers` view).
// The column names live in the type, where pgrx reads them; an alias would lose them.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn worker_status() -> TableIterator<
    'static,
    (
        name!(database_oid, i64),
        name!(pid, i32),
        name!(started_at, f64),
        name!(in_flight, i32),
        name!(helper_threads, i32),
        name!(tasks_claimed, i64),
        name!(steps_done, i64),
        name!(last_wakeup, Option<f64>),
        name!(prewarmed_blocks, Option<i64>),
    ),
> {
    use std::sync::atomic::Ordering::Relaxed;
    let rows: Vec<_> = shmem::live_slots()
        .into_iter()
        .map(|s| {
            let last = s.last_wakeup_us.load(Relaxed);
            let prewarmed = s.prewarmed_blocks.load(Relaxed);
            (
                s.database.load(Relaxed) as i64,
                s.pid.load(Relaxed),
                s.started_at_us.load(Relaxed) as f64 / 1e6,
                s.in_flight.load(Relaxed),
                s.helper_threads.load(Relaxed),
                s.tasks_claimed.load(Relaxed),
                s.steps_done.load(Relaxed),
                (last != 0).then(|| last as f64 / 1e6),
                (prewarmed >= 0).then_some(prewarmed),
            )
        })
        .collect();
    TableIterator::new(rows)
}
