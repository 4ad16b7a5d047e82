//! The line `trace()` shows for a step row, read by the log's own decoder
//! (`agent_loop_core::items`), so the worker and the trace can never disagree on the layout.

use agent_loop_core::items::Item;
use pgrx::prelude::*;

/// One step row as a line of `trace()`: `content` as stored, with the lessons a perceive row
/// names joined in as "recalled" (see `trace()`); `goal` is the task's. A row this build cannot
/// read shows as its content.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _step_summary(phase: &str, kind: &str, content: pgrx::JsonB, goal: &str) -> String {
    match Item::from_row(phase, kind, &content.0, goal) {
        Ok(item) => item.summary(),
        Err(_) => content.0.to_string(),
    }
}
