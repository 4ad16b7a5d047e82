//! SQL functions written in Rust. The rest of the API (submit, cancel, trace, add_model,
//! register_tool, the views) is plain SQL in `sql/api.sql`.

mod manage;
mod wait;
mod wake;

use pgrx::prelude::*;

use crate::shmem;
use crate::worker::txn::with_local_settings;

/// JSON Schema of a tool's arguments from its signature (see `register_tool`).
#[pg_extern(immutable, parallel_safe)]
fn _parameters_schema(signature: pgrx::JsonB) -> Result<pgrx::JsonB, String> {
    let args = signature
        .0
        .as_array()
        .ok_or("signature must be a JSON array")?
        .iter()
        .map(|a| {
            let text = |k: &str| a.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let flag = |k: &str| a.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            Ok(agent_loop_core::tools::SqlArg {
                name: text("name").ok_or("argument without name")?,
                type_name: text("type").ok_or("argument without type")?,
                named: flag("named"),
                has_default: flag("has_default"),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(pgrx::JsonB(agent_loop_core::tools::parameters_schema(
        &args,
    )))
}

/// Plans a task's `accept_if` expression without running it (EXPLAIN: parse analysis, planning
/// and the executor's privilege checks), so submit() refuses a typo, an unknown column or a
/// table the caller may not read at once, with its own SQLSTATE. Names resolve as they will in
/// the worker: with the database's default search_path, not submit()'s.
#[pg_extern(volatile, parallel_unsafe)]
fn _prepare_check(accept_if: &str) {
    use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
    let statement = agent_loop_core::tools::accept_if_statement(accept_if);
    let explain = format!("EXPLAIN (COSTS OFF) {statement}");
    let default_path = unsafe {
        std::ffi::CStr::from_ptr(pg_sys::GetConfigOptionResetString(c"search_path".as_ptr()))
    }
    .to_owned();
    let prepared = pgrx::PgTryBuilder::new(|| {
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

/// One row per running worker of this server (the `workers` view).
// The column names live in the type, where pgrx reads them; an alias would lose them.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
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
