//! The step log: what one task did, one item per row of `agent_loop.steps`.
//!
//! The log is append-only and is the task's whole conversation: a task resumes from it, its
//! task row (the goal) and the lessons its perceive row names.
//! Each item maps to a `(phase, kind, content)` triple; `kind` is one of the values the
//! `steps.kind` column allows. This module is the log's one encoding: the worker writes rows
//! with [`Item::content`] and reads them back with [`Item::from_row`], and `trace()` shows
//! them through the same reader ([`Item::summary`]).
//!
//! The encoding is versioned: a row's content may carry `"v"`, the [`LOG_FORMAT`] it was
//! written in; a row without one is version 1 (every row so far, so no byte of WAL is spent on
//! it). A reader refuses rows of a later version instead of misreading them.

use serde_json::{json, Value};

use crate::vocab::{Reasoning, ToolCallRequest};

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

/// `Item::Reflection.outcome` of a plan revised mid-task (the model sees these).
pub const REVISED_PLAN: &str = "revised_plan";

/// The latest compaction in the log: how many items it covers, and its summary.
pub fn latest_compaction(items: &[Item]) -> Option<(usize, &str)> {
    items.iter().rev().find_map(|i| match i {
        Item::Compaction { covers, summary } => Some((*covers, summary.as_str())),
        _ => None,
    })
}

/// The arguments of each tool call in `items`, by call id (to show a result with its call).
pub fn call_arguments(items: &[Item]) -> std::collections::HashMap<&str, &str> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::ToolCall {
                call_id, arguments, ..
            } => Some((call_id.as_str(), arguments.as_str())),
            _ => None,
        })
        .collect()
}

/// The version of the log encoding this build writes and reads.
pub const LOG_FORMAT: u64 = 1;

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
        match content.get("v").map(Value::as_u64) {
            None | Some(Some(1..=LOG_FORMAT)) => {}
            Some(v) => {
                return Err(BadStepRow(format!(
                    "{kind} step of log format {v:?}; this build reads up to {LOG_FORMAT}"
                )))
            }
        }
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

impl Item {
    /// The log row of a tool call the model asked for.
    pub fn tool_call(call: &ToolCallRequest) -> Item {
        Item::ToolCall {
            call_id: call.call_id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        }
    }

    /// The call a tool-call row records.
    pub fn as_tool_call(&self) -> Option<ToolCallRequest> {
        match self {
            Item::ToolCall {
                call_id,
                name,
                arguments,
            } => Some(ToolCallRequest {
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
            }),
            _ => None,
        }
    }

    /// The item as one line of `trace()`.
    pub fn summary(&self) -> String {
        match self {
            Item::Goal { text, memories } => {
                let mut line = format!("goal: {text}");
                for memory in memories {
                    line.push_str("\nrecalled: ");
                    line.push_str(&memory.lesson);
                }
                line
            }
            Item::Guidance { text } => format!("guidance: {text}"),
            Item::Reasoning(r) => {
                let bytes = jsonb_text_len(&r.item);
                format!("reasoning ({}, {bytes} bytes)", r.provider)
            }
            Item::AssistantMessage { text } => format!("assistant: {text}"),
            Item::ToolCall {
                call_id,
                name,
                arguments,
            } => format!("{name}({arguments}) [{call_id}]"),
            Item::ToolResult {
                name,
                output,
                is_error,
                ..
            } => {
                let from = if *is_error { "error from " } else { "" };
                format!("{from}{name} -> {}", chars(output, 500))
            }
            Item::Error { class, message, .. } => format!("{class}: {message}"),
            Item::Reflection { outcome, lesson } if outcome == REVISED_PLAN => {
                format!("revised plan: {lesson}")
            }
            Item::Reflection { outcome, lesson } => format!("lesson ({outcome}): {lesson}"),
            Item::Verification { passed, detail } => match passed {
                true => format!("answer accepted: {detail}"),
                false => format!("answer rejected: {detail}"),
            },
            Item::Compaction { covers, summary } => {
                format!("compacted steps 1-{covers}: {}", chars(summary, 300))
            }
        }
    }
}

/// The first `max` characters of `text` (SQL's `left()`).
fn chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The length in bytes of `value` as PostgreSQL prints a jsonb (`", "` and `": "` between
/// members), so that a reasoning item's size reads the same as `octet_length(content->>'item')`.
fn jsonb_text_len(value: &Value) -> usize {
    match value {
        Value::Array(items) => {
            2 + items.iter().map(jsonb_text_len).sum::<usize>() + 2 * items.len().saturating_sub(1)
        }
        Value::Object(members) => {
            let inner: usize = members
                .iter()
                .map(|(k, v)| Value::String(k.clone()).to_string().len() + 2 + jsonb_text_len(v))
                .sum();
            2 + inner + 2 * members.len().saturating_sub(1)
        }
        scalar => scalar.to_string().len(),
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

    /// One item of every variant; `variant` makes a new variant a compile error until it
    /// has a number, and `one_of_each_is_every_variant` until it is here.
    fn one_of_each() -> Vec<Item> {
        vec![
            Item::Goal {
                text: GOAL.into(),
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
        ]
    }

    fn variant(item: &Item) -> usize {
        match item {
            Item::Goal { .. } => 0,
            Item::Guidance { .. } => 1,
            Item::Compaction { .. } => 2,
            Item::Reasoning(_) => 3,
            Item::AssistantMessage { .. } => 4,
            Item::ToolCall { .. } => 5,
            Item::ToolResult { .. } => 6,
            Item::Verification { .. } => 7,
            Item::Error { .. } => 8,
            Item::Reflection { .. } => 9,
        }
    }
    const VARIANTS: usize = 10;

    #[test]
    fn one_of_each_is_every_variant() {
        let mut seen: Vec<usize> = one_of_each().iter().map(variant).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, (0..VARIANTS).collect::<Vec<_>>());
    }

    /// Items travel to executor backends as serde JSON (not the log's encoding, which keeps
    /// recalled lessons by key only): every variant must come back equal.
    #[test]
    fn every_item_round_trips_through_serde() {
        let items = one_of_each();
        let text = serde_json::to_string(&items).unwrap();
        let back: Vec<Item> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, items);
    }

    /// Every variant is written by `content` and read back by `from_row`, and has a line.
    #[test]
    fn every_variant_survives_the_steps_table() {
        for item in one_of_each() {
            assert!(!item.summary().is_empty());
            round_trip(item);
        }
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

#[cfg(test)]
mod summary_tests {
    use super::*;

    #[test]
    fn a_reasoning_item_is_measured_as_postgres_prints_jsonb() {
        let item = json!({"type": "reasoning", "ids": [1, 2], "s": "é"});
        // {"s": "é", "ids": [1, 2], "type": "reasoning"}
        assert_eq!(jsonb_text_len(&item), 47);
    }

    #[test]
    fn summaries_read_rows_through_the_same_decoder() {
        let row =
            json!({"call_id": "c1", "name": "q", "output": "x".repeat(600), "is_error": true});
        let item = Item::from_row("act", "tool_result", &row, "").unwrap();
        assert_eq!(
            item.summary(),
            format!("error from q -> {}", "x".repeat(500))
        );
        let newer = json!({"v": LOG_FORMAT + 1, "role": "guidance", "text": "t"});
        assert!(Item::from_row("perceive", "message", &newer, "").is_err());
    }
}
