//! The step log: what one task did, one item per row of `agent_loop.steps`.
//!
//! The log is append-only and is the task's whole conversation: a task resumes from it, its
//! task row (the goal) and the lessons its perceive row names.
//! Each item maps to a `(phase, kind, content)` triple; `kind` is one of the values the
//! `steps.kind` column allows.

use serde_json::{json, Value};

use crate::vocab::Reasoning;

/// The phase of the loop an item was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    Perceive,
    Decide,
    Act,
    Verify,
    Reflect,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Perceive => "perceive",
            Phase::Decide => "decide",
            Phase::Act => "act",
            Phase::Verify => "verify",
            Phase::Reflect => "reflect",
        }
    }
}

/// A lesson recalled into a task's prompt, and the key of its row in `reflections`
/// (`task_id`, `id`): the perceive row stores the key, the lesson is read back through it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    pub task_id: i64,
    pub id: i64,
    pub lesson: String,
}

/// One entry of the step log.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Item {
    /// The goal as submitted, with the lessons recalled for it (perceive).
    Goal { text: String, memories: Vec<Memory> },
    /// Guidance sent to the running task with `send()` (perceive): a user message.
    Guidance { text: String },
    /// A summary standing in for the log's first `covers` items in later prompts (perceive).
    Compaction { covers: usize, summary: String },
    /// Reasoning the model returned (decide), carried forward to the provider that wrote it.
    Reasoning(Reasoning),
    /// Text the model wrote (decide); the final answer when no tool call follows it.
    AssistantMessage { text: String },
    /// A tool call the model asked for (decide). `arguments` is the raw JSON text it sent.
    ToolCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    /// What the tool returned, or the error it raised (act). Always follows its call.
    ToolResult {
        call_id: String,
        name: String,
        output: String,
        is_error: bool,
    },
    /// The task's check of a final answer (verify); a failed one is shown to the model.
    Verification { passed: bool, detail: String },
    /// A failure that is not shown to the model: a failed model request, a limit reached.
    Error {
        phase: Phase,
        class: String,
        message: String,
    },
    /// A lesson written when the task ended, or a revised plan after failures mid-task
    /// (reflect; see [`crate::reflection`]).
    Reflection { outcome: String, lesson: String },
}

/// A step row could not be read back into an [`Item`].
#[derive(Debug, PartialEq)]
pub struct BadStepRow(pub String);

impl std::fmt::Display for BadStepRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unreadable step row: {}", self.0)
    }
}

impl Item {
    pub fn phase(&self) -> Phase {
        match self {
            Item::Goal { .. } | Item::Guidance { .. } | Item::Compaction { .. } => Phase::Perceive,
            Item::Reasoning(_) | Item::AssistantMessage { .. } | Item::ToolCall { .. } => {
                Phase::Decide
            }
            Item::Verification { .. } => Phase::Verify,
            Item::ToolResult { .. } => Phase::Act,
            Item::Error { phase, .. } => *phase,
            Item::Reflection { .. } => Phase::Reflect,
        }
    }

    /// The `steps.kind` value.
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Goal { .. }
            | Item::Guidance { .. }
            | Item::Reasoning(_)
            | Item::AssistantMessage { .. } => "message",
            Item::Compaction { .. } => "compaction",
            Item::Verification { .. } => "verification",
            Item::ToolCall { .. } => "tool_call",
            Item::ToolResult { .. } => "tool_result",
            Item::Error { .. } => "error",
            Item::Reflection { .. } => "reflection",
        }
    }

    /// The `steps.content` value.
    pub fn content(&self) -> Value {
        match self {
            // The goal's text is the task's (tasks.goal), given back to from_row, and each
            // lesson is stored once, in reflections: copies here were most of a short task's WAL.
            Item::Goal { memories, .. } => {
                let keys: Vec<[i64; 2]> = memories.iter().map(|m| [m.task_id, m.id]).collect();
                json!({"role": "user", "lessons": keys})
            }
            Item::Guidance { text } => json!({"role": "guidance", "text": text}),
            Item::Compaction { covers, summary } => json!({"covers": covers, "summary": summary}),
            Item::Reasoning(r) => {
                json!({"role": "reasoning", "provider": r.provider, "item": r.item})
            }
            Item::AssistantMessage { text } => json!({"role": "assistant", "text": text}),
            Item::ToolCall {
                call_id,
                name,
                arguments,
            } => json!({"call_id": call_id, "name": name, "arguments": arguments}),
            Item::ToolResult {
                call_id,
                name,
                output,
                is_error,
            } => match is_error {
                true => {
                    json!({"call_id": call_id, "name": name, "output": output, "is_error": true})
                }
                false => json!({"call_id": call_id, "name": name, "output": output}),
            },
            Item::Verification { passed, detail } => json!({"passed": passed, "detail": detail}),
            Item::Error { class, message, .. } => json!({"class": class, "message": message}),
            Item::Reflection { outcome, lesson } => json!({"outcome": outcome, "lesson": lesson}),
        }
    }

    /// Reads a step row back. `phase` only matters for errors, the one kind that can occur in
    /// several phases; `goal` is the task's goal, which its perceive row does not repeat (rows
    /// written before carry it as "text", which wins). The perceive row's lessons are read from
    /// "recalled": `[task_id, id, lesson]` triples the loader adds for the keys in "lessons"
    /// whose lessons still exist (one forgotten since is left out).
    pub fn from_row(
        phase: &str,
        kind: &str,
        content: &Value,
        goal: &str,
    ) -> Result<Item, BadStepRow> {
        let text = |key: &str| -> Result<String, BadStepRow> {
            content
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| BadStepRow(format!("{kind} step without \"{key}\"")))
        };
        Ok(match kind {
            "message" => match content.get("role").and_then(Value::as_str) {
                Some("user") => Item::Goal {
                    text: text("text").unwrap_or_else(|_| goal.to_owned()),
                    memories: recalled(content)?,
                },
                Some("assistant") => Item::AssistantMessage {
                    text: text("text")?,
                },
                Some("guidance") => Item::Guidance {
                    text: text("text")?,
                },
                Some("reasoning") => Item::Reasoning(Reasoning {
                    provider: text("provider")?,
                    item: content.get("item").cloned().unwrap_or(Value::Null),
                }),
                other => return Err(BadStepRow(format!("message step with role {other:?}"))),
            },
            "compaction" => Item::Compaction {
                covers: content
                    .get("covers")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| BadStepRow("compaction step without \"covers\"".into()))?
                    as usize,
                summary: text("summary")?,
            },
            "verification" => Item::Verification {
                passed: content
                    .get("passed")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| BadStepRow("verification step without \"passed\"".into()))?,
                detail: text("detail")?,
            },
            "tool_call" => Item::ToolCall {
                call_id: text("call_id")?,
                name: text("name")?,
                arguments: text("arguments")?,
            },
            "tool_result" => Item::ToolResult {
                call_id: text("call_id")?,
                name: text("name")?,
                output: text("output")?,
                is_error: content
                    .get("is_error")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            "error" => Item::Error {
                phase: parse_phase(phase)?,
                class: text("class")?,
                message: text("message")?,
            },
            "reflection" => Item::Reflection {
                outcome: text("outcome")?,
                lesson: text("lesson")?,
            },
            other => return Err(BadStepRow(format!("unknown step kind {other:?}"))),
        })
    }
}

fn parse_phase(phase: &str) -> Result<Phase, BadStepRow> {
    Ok(match phase {
        "perceive" => Phase::Perceive,
        "decide" => Phase::Decide,
        "act" => Phase::Act,
        "verify" => Phase::Verify,
        "reflect" => Phase::Reflect,
        other => return Err(BadStepRow(format!("unknown phase {other:?}"))),
    })
}

/// The perceive row's "recalled" triples as memories.
fn recalled(content: &Value) -> Result<Vec<Memory>, BadStepRow> {
    let triples = content.get("recalled").and_then(Value::as_array);
    let memory = |triple: &Value| match triple.as_array().map(Vec::as_slice) {
        Some([task_id, id, lesson]) => Some(Memory {
            task_id: task_id.as_i64()?,
            id: id.as_i64()?,
            lesson: lesson.as_str()?.to_owned(),
        }),
        _ => None,
    };
    (triples.map(Vec::as_slice).unwrap_or_default().iter())
        .map(|t| {
            memory(t).ok_or_else(|| {
                BadStepRow(format!("recalled lesson {t} is not [task_id, id, lesson]"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items travel to executor backends as serde JSON (not the log's encoding, which keeps
    /// recalled lessons by key only): every variant must come back equal.
    #[test]
    fn every_item_round_trips_through_serde() {
        let items = vec![
            Item::Goal {
                text: "g".into(),
                memories: vec![Memory {
                    task_id: 1,
                    id: 2,
                    lesson: "l".into(),
                }],
            },
            Item::Guidance { text: "x".into() },
            Item::Compaction {
                covers: 3,
                summary: "s".into(),
            },
            Item::Reasoning(crate::vocab::Reasoning {
                provider: "anthropic".into(),
                item: serde_json::json!({"signature": "abc"}),
            }),
            Item::AssistantMessage { text: "a".into() },
            Item::ToolCall {
                call_id: "c".into(),
                name: "n".into(),
                arguments: "{not json".into(),
            },
            Item::ToolResult {
                call_id: "c".into(),
                name: "n".into(),
                output: "o".into(),
                is_error: true,
            },
            Item::Verification {
                passed: false,
                detail: "d".into(),
            },
            Item::Error {
                phase: Phase::Act,
                class: "k".into(),
                message: "m".into(),
            },
            Item::Reflection {
                outcome: "o".into(),
                lesson: "l".into(),
            },
        ];
        let text = serde_json::to_string(&items).unwrap();
        let back: Vec<Item> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, items);
    }

    fn round_trip(item: Item) {
        let mut content = item.content();
        if let Item::Goal { memories, .. } = &item {
            // What the loader adds: the lessons the keys name.
            let triples: Vec<Value> = (memories.iter())
                .map(|m| json!([m.task_id, m.id, m.lesson]))
                .collect();
            content["recalled"] = json!(triples);
        }
        let back = Item::from_row(item.phase().as_str(), item.kind(), &content, GOAL);
        assert_eq!(back.unwrap(), item);
    }

    const GOAL: &str = "count orders";

    #[test]
    fn the_goal_row_leaves_the_goal_to_the_task() {
        let goal = Item::Goal {
            text: GOAL.into(),
            memories: vec![],
        };
        assert_eq!(goal.content(), json!({"role": "user", "lessons": []}));
        // A row that still carries its text (written by an earlier version) is read as it is.
        let older = json!({"role": "user", "text": "an older goal", "lessons": []});
        let read = Item::from_row("perceive", "message", &older, GOAL).unwrap();
        assert!(matches!(read, Item::Goal { text, .. } if text == "an older goal"));
    }

    #[test]
    fn the_goal_row_names_its_lessons_by_key() {
        let goal = Item::Goal {
            text: GOAL.into(),
            memories: vec![Memory {
                task_id: 7,
                id: 3,
                lesson: "use sql_query".into(),
            }],
        };
        assert_eq!(goal.content(), json!({"role": "user", "lessons": [[7, 3]]}));
        // A lesson forgotten since the row was written: the loader finds nothing to add.
        let read = Item::from_row("perceive", "message", &goal.content(), GOAL).unwrap();
        assert!(matches!(read, Item::Goal { memories, .. } if memories.is_empty()));
        let garbled = json!({"role": "user", "lessons": [[7, 3]], "recalled": [[7, "x"]]});
        assert!(Item::from_row("perceive", "message", &garbled, GOAL).is_err());
    }

    #[test]
    fn every_item_survives_the_steps_table() {
        round_trip(Item::Goal {
            text: GOAL.into(),
            memories: vec![Memory {
                task_id: 1,
                id: 2,
                lesson: "use sql_query".into(),
            }],
        });
        round_trip(Item::AssistantMessage { text: "42".into() });
        round_trip(Item::Guidance {
            text: "use the 2024 table".into(),
        });
        round_trip(Item::Compaction {
            covers: 7,
            summary: "called f twice".into(),
        });
        round_trip(Item::Reasoning(Reasoning {
            provider: "anthropic".into(),
            item: json!({"type": "thinking", "thinking": "hm", "signature": "s"}),
        }));
        round_trip(Item::Verification {
            passed: false,
            detail: "check returned false".into(),
        });
        round_trip(Item::ToolCall {
            call_id: "c1".into(),
            name: "sql_query".into(),
            arguments: r#"{"query":"select 1"}"#.into(),
        });
        round_trip(Item::ToolResult {
            call_id: "c1".into(),
            name: "sql_query".into(),
            output: "[]".into(),
            is_error: true,
        });
        // Only a failed call says so: "is_error" is left out when false.
        round_trip(Item::ToolResult {
            call_id: "c2".into(),
            name: "sql_query".into(),
            output: "[{\"n\": 1}]".into(),
            is_error: false,
        });
        round_trip(Item::Error {
            phase: Phase::Decide,
            class: "rate_limited".into(),
            message: "429".into(),
        });
        round_trip(Item::Reflection {
            outcome: "succeeded".into(),
            lesson: "x".into(),
        });
    }

    #[test]
    fn unknown_kinds_and_missing_fields_are_reported_not_guessed() {
        assert!(Item::from_row("decide", "telepathy", &json!({}), GOAL).is_err());
        let err = Item::from_row("decide", "tool_call", &json!({"name": "x"}), GOAL).unwrap_err();
        assert!(err.0.contains("call_id"), "{err}");
    }
}
