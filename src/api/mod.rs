//! SQL functions written in Rust. The rest of the API (submit, cancel, trace, add_model,
//! register_tool, the views) is plain SQL in `sql/api.sql`.

mod manage;
mod wait;
mod wake;

use pgrx::prelude::*;

use crate::shmem;

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
