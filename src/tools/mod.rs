//! Act: running one tool call as the task's owner.
//!
//! Every call runs in its own subtransaction, as the owner's role inside a security-restricted
//! operation, with a statement timeout. A registered function keeps its effects (they commit
//! with the step that records them); `sql_query` is read-only and always rolled back. Any
//! error becomes the tool's result, which the model sees.

use std::ffi::CString;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use agent_loop_core::task::Candidate;
use agent_loop_core::tools::{
    accept_if_statement, bind_arguments, call_statement, BoundArg, Builtin, SqlArg, SqlFunction,
};
use agent_loop_core::vocab::{truncate, ToolCallRequest};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiHeapTupleData;
use pgrx::JsonB;
use serde_json::Value;

use crate::pg::txn::{as_role_in_subtransaction, execute, set_local, statement_count, OnSuccess};
use crate::settings;
use crate::store::ToolRow;

/// What a tool call produced.
pub struct ToolRun {
    pub output: String,
    pub is_error: bool,
    pub elapsed_ms: i32,
}

/// Which task and step a tool call belongs to, so a DBA can tell whose SQL is running.
pub struct Attribution {
    pub task_id: i64,
    pub turn: i32,
}

impl Attribution {
    /// A leading comment, so the statement names its task in `pg_stat_activity.query` and in
    /// `pg_stat_statements` (which keeps the first text it saw of a statement).
    fn comment(&self, tool: &str) -> String {
        let tool: String = tool
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        format!(
            "/* agent_loop task={} step={} tool={tool} */ ",
            self.task_id, self.turn
        )
    }
}

pub fn run(
    owner: pg_sys::Oid,
    tools: &[ToolRow],
    call: &ToolCallRequest,
    attribution: &Attribution,
) -> ToolRun {
    let started = Instant::now();
    let _activity = Activity::begin(attribution);
    let result = match tools.iter().find(|t| t.name == call.name) {
        None => Err(format!(
            "unknown tool \"{}\"; the tools of this task are: {}",
            call.name,
            tools
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(tool) => {
            let comment = attribution.comment(&tool.name);
            match (&tool.function, Builtin::named(&tool.name)) {
                (Some(function), None) => call_function(owner, function, &call.arguments, &comment),
                (None, Some(Builtin::SqlQuery)) => sql_query(owner, &call.arguments, &comment),
                // spawn_subtasks: the step handles it; it never runs as a plain tool.
                _ => Err(format!("{} is built into the loop", tool.name)),
            }
        }
    };
    let limit = settings::MAX_TOOL_OUTPUT_BYTES.get().max(256) as usize;
    let (output, is_error) = match result {
        Ok(output) => (truncate(&output, limit), false),
        Err(message) => (truncate(&message, limit), true),
    };
    ToolRun {
        output,
        is_error,
        elapsed_ms: started.elapsed().as_millis().min(i32::MAX as u128) as i32,
    }
}

fn call_function(
    owner: pg_sys::Oid,
    function: &SqlFunction,
    arguments: &str,
    comment: &str,
) -> Result<String, String> {
    let bound = bind_arguments(function, arguments)?;
    let statement = comment.to_owned() + &call_statement(function, &bound);
    run_statement(owner, &statement, &bound, OnSuccess::Keep)
}

/// The built-in read-only query tool: rows as a JSON array, at most the row limit.
fn sql_query(owner: pg_sys::Oid, arguments: &str, comment: &str) -> Result<String, String> {
    let signature = SqlFunction {
        target: String::new(),
        args: vec![SqlArg {
            name: "query".into(),
            named: true,
            type_name: "text".into(),
            has_default: false,
        }],
        returns_set: false,
        returns_void: false,
    };
    let bound = bind_arguments(&signature, arguments)?;
    let query = bound[0].text.clone().unwrap_or_default();
    let query = query.trim().trim_end_matches(';').trim_end();
    if query.is_empty() {
        return Err("the query is empty".into());
    }
    let first_word = query
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if !matches!(first_word.as_str(), "SELECT" | "WITH" | "VALUES" | "TABLE") {
        return Err(format!(
            "sql_query runs one read-only query (SELECT, WITH, VALUES or TABLE), not {first_word}"
        ));
    }
    let limit = settings::SQL_QUERY_ROW_LIMIT.get().max(1);
    // The newline keeps a trailing "-- comment" in the query from swallowing the wrapper.
    let statement = format!(
        "{comment}SELECT coalesce(jsonb_agg(r), '[]'::jsonb) FROM \
         (SELECT to_jsonb(q) AS r FROM ({query}\n) AS q LIMIT {}) AS rows",
        limit + 1
    );
    // Read-only for real: the subtransaction sets transaction_read_only, so even a function the
    // query calls cannot write, and is rolled back whatever happens.
    let output = run_statement(owner, &statement, &[], OnSuccess::Discard)?;
    let mut rows: Value = serde_json::from_str(&output).map_err(|e| e.to_string())?;
    if let Some(list) = rows.as_array_mut() {
        if list.len() > limit as usize {
            list.truncate(limit as usize);
            return Ok(serde_json::json!({
                "rows": list, "truncated": true,
                "note": format!("only the first {limit} rows are shown")
            })
            .to_string());
        }
    }
    Ok(rows.to_string())
}

fn run_statement(
    owner: pg_sys::Oid,
    statement: &str,
    bound: &[BoundArg],
    on_success: OnSuccess,
) -> Result<String, String> {
    let args: Vec<DatumWithOid> = bound.iter().map(|b| b.text.clone().into()).collect();
    let value = run_as_owner(owner, statement, args, on_success, |row| {
        row.map(|r| r.get::<JsonB>(1))
            .transpose()
            .map(Option::flatten)
    })?;
    Ok(value
        .map(|j| j.0.to_string())
        .unwrap_or_else(|| "null".into()))
}

/// Runs `statement` as `owner` in a subtransaction with the tool timeout (read-only and rolled
/// back when `on_success` is `Discard`), and reads its first row with `read`.
fn run_as_owner<R>(
    owner: pg_sys::Oid,
    statement: &str,
    args: Vec<DatumWithOid<'static>>,
    on_success: OnSuccess,
    read: impl FnOnce(Option<SpiHeapTupleData<'_>>) -> pgrx::spi::SpiResult<R>,
) -> Result<R, String> {
    let read_only = on_success == OnSuccess::Discard;
    let timeout = settings::TOOL_TIMEOUT_MS.get();
    // SPI does not report what it runs; `pg_stat_activity.query` shows the statement with its
    // leading comment, and parse analysis then reports its `query_id`.
    if let Ok(text) = CString::new(statement) {
        crate::pg::backend::report_running(&text);
    }
    as_role_in_subtransaction(
        owner,
        timeout,
        on_success,
        AssertUnwindSafe(|| {
            // A tenant's text wrapped in ours (sql_query, accept_if) must stay one statement.
            if statement_count(statement) != 1 {
                error!("a tool call runs exactly one statement");
            }
            if read_only {
                set_local(c"transaction_read_only", c"on");
            }
            // A read-only call leaves its subtransaction without a transaction ID.
            Spi::connect_mut(|client| {
                let mut table = execute(client, statement, Some(2), &args)?;
                read(table.next())
            })
        }),
    )
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Verify: runs the task's `accept_if` expression on a final answer, read-only, as the task's
/// owner. `Err` says why the answer is not accepted; the model is shown it.
pub fn verify(
    owner: pg_sys::Oid,
    accept_if: &str,
    candidate: &Candidate,
    attribution: &Attribution,
) -> Result<(), String> {
    let _activity = Activity::begin(attribution);
    let statement = attribution.comment("accept_if") + &accept_if_statement(accept_if);
    let args = vec![
        candidate.answer.clone().into(),
        candidate.output.clone().map(JsonB).into(),
    ];
    let passed = run_as_owner(owner, &statement, args, OnSuccess::Discard, |row| {
        row.map(|r| r.get::<bool>(1))
            .transpose()
            .map(Option::flatten)
    });
    let shown = truncate(accept_if.trim(), 500);
    match passed {
        Ok(Some(true)) => Ok(()),
        Ok(Some(false)) => Err(format!("the check {shown} is false for this answer")),
        Ok(None) => Err(format!("the check {shown} is NULL for this answer")),
        Err(error) => Err(format!("the check {shown} failed on this answer: {error}")),
    }
}

/// A call running, while it lives: the watchdog of the executor's worker knows since when
/// (`shmem::note_tool_call`), and when it ends the process reports idle again. Which task,
/// step and tool it is shows in the statement's leading comment, in `pg_stat_activity.query`,
/// which only superusers and pg_read_all_stats see; `application_name`, which every role sees,
/// names neither.
struct Activity;

impl Activity {
    fn begin(attribution: &Attribution) -> Activity {
        crate::pg::shmem::note_tool_call(Some(attribution.task_id));
        Activity
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        crate::pg::shmem::note_tool_call(None);
        crate::pg::backend::report_idle();
    }
}
