//! Task decomposition: the built-in tool `spawn_subtasks` splits a task's work into subtasks
//! that run as tasks of their own (in parallel, on any worker, as the same owner, with the same
//! model, tools and limits). The parent waits without a worker; when the last subtask ends it
//! is queued again, and the call's result is what each subtask answered.

use serde_json::{json, Value};

/// The built-in tool's name (a row of `agent_loop.tools` with no function).
pub const TOOL: &str = "spawn_subtasks";

/// Most subtasks one call may start.
pub const MAX_SUBTASKS: usize = 8;

/// Longest goal of one subtask.
pub const MAX_GOAL_BYTES: usize = 65_536;

/// The goals of a `spawn_subtasks` call, or why its arguments are not usable (the model reads
/// that as the call's result).
/// The result of a spawn_subtasks call that would take its task past `cap` subtasks in all
/// (`agent_loop.max_subtasks`).
pub fn over_cap(cap: i32, started: i32, asked: usize) -> String {
    format!(
        "not run: a task may start at most {cap} subtasks in all; this one has started \
         {started} and asked for {asked} more. Do the rest yourself, or in fewer subtasks."
    )
}

pub fn goals(arguments: &str) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_str(arguments)
        .map_err(|e| format!("the arguments are not valid JSON: {e}"))?;
    let goals = value
        .get("goals")
        .and_then(Value::as_array)
        .ok_or("expected {\"goals\": [\"first subtask\", ...]}")?;
    if goals.is_empty() || goals.len() > MAX_SUBTASKS {
        return Err(format!(
            "give between 1 and {MAX_SUBTASKS} goals, not {}",
            goals.len()
        ));
    }
    goals
        .iter()
        .map(|g| match g.as_str().map(str::trim) {
            Some(goal) if !goal.is_empty() && goal.len() <= MAX_GOAL_BYTES => Ok(goal.to_owned()),
            Some(goal) if !goal.is_empty() => Err(format!(
                "a goal is {} bytes; the limit is {MAX_GOAL_BYTES}",
                goal.len()
            )),
            _ => Err("each goal must be a non-empty string".to_owned()),
        })
        .collect()
}

/// How one subtask ended.
#[derive(Clone, Debug, PartialEq)]
pub struct SubtaskEnd {
    pub task_id: i64,
    pub goal: String,
    pub status: String,
    pub answer: Option<String>,
    pub error: Option<String>,
}

/// The result the parent's model reads for its `spawn_subtasks` call: each subtask in the
/// order asked, with its answer or its error.
pub fn results(ends: &[SubtaskEnd]) -> String {
    let items: Vec<Value> = ends
        .iter()
        .map(|e| {
            let mut item = json!({"task": e.task_id, "goal": e.goal, "status": e.status});
            if let Some(answer) = &e.answer {
                item["answer"] = json!(answer);
            }
            if let Some(error) = &e.error {
                item["error"] = json!(error);
            }
            item
        })
        .collect();
    Value::Array(items).to_string()
}

/// Whether the call's result should be marked as an error: when no subtask succeeded.
pub fn all_failed(ends: &[SubtaskEnd]) -> bool {
    !ends
        .iter()
        .any(|e| e.status == crate::lifecycle::TaskStatus::Succeeded.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_are_read_and_bad_arguments_explained() {
        assert_eq!(
            goals(r#"{"goals": [" count orders ", "sum refunds"]}"#),
            Ok(vec!["count orders".to_owned(), "sum refunds".to_owned()])
        );
        assert!(goals("{goals").unwrap_err().contains("not valid JSON"));
        assert!(goals(r#"{"tasks": ["x"]}"#)
            .unwrap_err()
            .contains("expected"));
        assert!(goals(r#"{"goals": []}"#)
            .unwrap_err()
            .contains("between 1 and 8"));
        assert!(goals(r#"{"goals": ["a", 3]}"#)
            .unwrap_err()
            .contains("non-empty string"));
        let nine = serde_json::to_string(&json!({"goals": vec!["g"; 9]})).unwrap();
        assert!(goals(&nine).unwrap_err().contains("not 9"));
        let huge = serde_json::to_string(&json!({"goals": ["x".repeat(MAX_GOAL_BYTES + 1)]}));
        assert!(goals(&huge.unwrap()).unwrap_err().contains("limit"));
    }

    #[test]
    fn results_keep_the_order_asked_and_say_how_each_ended() {
        let ends = vec![
            SubtaskEnd {
                task_id: 7,
                goal: "a".into(),
                status: "succeeded".into(),
                answer: Some("42".into()),
                error: None,
            },
            SubtaskEnd {
                task_id: 8,
                goal: "b".into(),
                status: "failed".into(),
                answer: None,
                error: Some("max_steps_exceeded: used all 3 steps".into()),
            },
        ];
        let parsed: Value = serde_json::from_str(&results(&ends)).unwrap();
        assert_eq!(
            parsed[0],
            json!({"task": 7, "goal": "a", "status": "succeeded", "answer": "42"})
        );
        assert_eq!(parsed[1]["error"], "max_steps_exceeded: used all 3 steps");
        assert!(!all_failed(&ends));
        assert!(all_failed(&ends[1..]));
    }
}
