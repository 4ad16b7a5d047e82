//! Act: running one tool call as the task's owner.
//!
//! Every call runs in its own subtransaction, as the owner's role inside a security-restricted
//! operation, with a statement timeout. A registered function keeps its effects (they commit
//! with the step that records them); `sql_query` is read-only and always rolled back. Any
//! error becomes the tool's result, which the model sees.

use std::time::Instant;

use agent_loop_core::model::{truncate, ToolCallRequest};
use agent_loop_core::tools::{bind_arguments, call_statement, BoundArg, SqlArg, SqlFunction};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

use crate::settings;
use crate::store::ToolRow;
use crate::worker::txn::{as_role_in_subtransaction, OnSuccess};

/// What a tool call produced.
pub struct ToolRun {
    pub output: String,
    pub is_error: bool,
    pub elapsed_ms: i32,
}

pub fn run(owner: pg_sys::Oid, tools: &[ToolRow], call: &ToolCallRequest) -> ToolRun {
    let started = Instant::now();
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
        Some(tool) => match &tool.function {
            None => sql_query(owner, &call.arguments),
            Some(function) => call_function(owner, function, &call.arguments),
        },
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
) -> Result<String, String> {
    let bound = bind_arguments(function, arguments)?;
    let statement = call_statement(function, &bound);
    run_statement(owner, &statement, &bound, OnSuccess::Keep)
}

/// The built-in read-only query tool: rows as a JSON array, at most the row limit.
fn sql_query(owner: pg_sys::Oid, arguments: &str) -> Result<String, String> {
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
        "SELECT coalesce(jsonb_agg(r), '[]'::jsonb) FROM \
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
    let read_only = on_success == OnSuccess::Discard;
    let timeout = settings::TOOL_TIMEOUT_MS.get();
    as_role_in_subtransaction(owner, timeout, on_success, || {
        Spi::connect_mut(|client| {
            if read_only {
                client.update("SET LOCAL transaction_read_only = on", None, &[])?;
            }
            let args: Vec<_> = bound.iter().map(|b| b.text.clone().into()).collect();
            let table = client.update(statement, Some(2), &args)?;
            let value = if table.is_empty() {
                None
            } else {
                table.first().get::<JsonB>(1)?
            };
            Ok::<_, pgrx::spi::Error>(
                value
                    .map(|j| j.0.to_string())
                    .unwrap_or_else(|| "null".into()),
            )
        })
    })?
    .map_err(|e| e.to_string())
}
