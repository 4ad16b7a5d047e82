//! Perceive: turn the step log into the prompt for the next decide.

use serde_json::Value;

use crate::guards;
use crate::items::Item;
use crate::vocab::{Message, Prompt, Reasoning, ToolCallRequest, ToolSpec};

/// Builds the prompt from the instructions and the log. Lessons recalled at perceive time join
/// the system message; reasoning, text and tool calls of one model turn stay one assistant
/// message, and every tool result follows the assistant message that asked for it. Guidance
/// sent to a running task, a rejected answer and a revised plan reach the model as user
/// messages. Errors and end-of-task reflections are for people reading the trace, not for the
/// model. The latest compaction stands in for the items it covers; the goal always stays.
/// `needs_data` (the task's `require_tool_use`) and the log set the `tool_choice`
/// ([`guards::tool_choice`]).
pub fn build_prompt(
    instructions: &str,
    items: &[Item],
    tools: Vec<ToolSpec>,
    output_schema: Option<Value>,
    needs_data: bool,
) -> Prompt {
    let mut builder = Builder {
        messages: vec![Message::System(instructions.to_owned())],
        turn: None,
    };
    let compaction = crate::items::latest_compaction(items);
    match compaction {
        Some((covers, summary)) => {
            let covers = covers.min(items.len());
            items[..covers]
                .iter()
                .filter(|i| matches!(i, Item::Goal { .. }))
                .for_each(|i| builder.push(i));
            builder.user(format!("{COMPACTION_PREFIX}\n{summary}"));
            items[covers..]
                .iter()
                .filter(|i| !matches!(i, Item::Compaction { .. }))
                .for_each(|i| builder.push(i));
        }
        None => items.iter().for_each(|i| builder.push(i)),
    }
    builder.flush();
    Prompt {
        messages: builder.messages,
        tool_choice: guards::tool_choice(items, needs_data),
        tools,
        output_schema,
        max_output_tokens: None,
    }
}

/// How a compaction's summary is introduced to the model.
pub const COMPACTION_PREFIX: &str =
    "Earlier steps of this task were summarised to save room. The summary:";

struct Builder {
    messages: Vec<Message>,
    /// The assistant turn being assembled: flushed when the next turn or a tool result begins.
    turn: Option<Turn>,
}

#[derive(Default)]
struct Turn {
    reasoning: Vec<Reasoning>,
    text: Option<String>,
    tool_calls: Vec<ToolCallRequest>,
}

impl Builder {
    fn flush(&mut self) {
        if let Some(t) = self.turn.take() {
            self.messages.push(Message::Assistant {
                reasoning: t.reasoning,
                text: t.text,
                tool_calls: t.tool_calls,
            });
        }
    }

    fn user(&mut self, text: String) {
        self.flush();
        self.messages.push(Message::User(text));
    }

    /// The turn a reasoning item or a text starts or joins.
    fn next_turn(&mut self) -> &mut Turn {
        if self
            .turn
            .as_ref()
            .is_some_and(|t| t.text.is_some() || !t.tool_calls.is_empty())
        {
            self.flush();
        }
        self.turn.get_or_insert_with(Turn::default)
    }

    fn push(&mut self, item: &Item) {
        match item {
            Item::Goal { text, memories } => {
                if !memories.is_empty() {
                    if let Some(Message::System(system)) = self.messages.first_mut() {
                        system.push_str("\n\nLessons from your earlier tasks:");
                        for memory in memories {
                            system.push_str("\n- ");
                            system.push_str(&memory.lesson);
                        }
                    }
                }
                self.user(text.clone());
            }
            Item::Reasoning(reasoning) => self.next_turn().reasoning.push(reasoning.clone()),
            Item::AssistantMessage { text } => self.next_turn().text = Some(text.clone()),
            Item::ToolCall { .. } => self
                .turn
                .get_or_insert_with(Turn::default)
                .tool_calls
                .extend(item.as_tool_call()),
            Item::ToolResult {
                call_id,
                output,
                is_error,
                ..
            } => {
                self.flush();
                self.messages.push(Message::ToolResult {
                    call_id: call_id.clone(),
                    output: output.clone(),
                    is_error: *is_error,
                });
            }
            Item::Guidance { text } => self.user(text.clone()),
            Item::Verification {
                passed: false,
                detail,
            } => self.user(format!(
                "Your answer was not accepted: {detail}\nFix the problem and answer again."
            )),
            Item::Reflection { outcome, lesson } if outcome == crate::items::REVISED_PLAN => {
                self.user(format!("Looking back at the failures so far: {lesson}"))
            }
            Item::Compaction { summary, .. } => {
                self.user(format!("{COMPACTION_PREFIX}\n{summary}"))
            }
            Item::Verification { .. } | Item::Error { .. } | Item::Reflection { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{Memory, Phase};

    fn call(id: &str) -> Item {
        Item::ToolCall {
            call_id: id.into(),
            name: "t".into(),
            arguments: "{}".into(),
        }
    }
    fn result(id: &str) -> Item {
        Item::ToolResult {
            call_id: id.into(),
            name: "t".into(),
            output: "ok".into(),
            is_error: false,
        }
    }

    #[test]
    fn parallel_calls_form_one_assistant_message_followed_by_their_results() {
        let items = vec![
            Item::Goal {
                text: "g".into(),
                memories: vec![Memory {
                    task_id: 1,
                    id: 1,
                    lesson: "lesson one".into(),
                }],
            },
            Item::AssistantMessage {
                text: "let me look".into(),
            },
            call("a"),
            call("b"),
            result("a"),
            result("b"),
            Item::Error {
                phase: Phase::Decide,
                class: "rate_limited".into(),
                message: "429".into(),
            },
            Item::AssistantMessage {
                text: "done".into(),
            },
        ];
        let prompt = build_prompt("be brief", &items, vec![], None, false);
        let m = &prompt.messages;
        assert_eq!(m.len(), 6, "{m:#?}");
        assert_eq!(
            m[0],
            Message::System("be brief\n\nLessons from your earlier tasks:\n- lesson one".into())
        );
        assert_eq!(m[1], Message::User("g".into()));
        match &m[2] {
            Message::Assistant {
                text, tool_calls, ..
            } => {
                assert_eq!(text.as_deref(), Some("let me look"));
                assert_eq!(tool_calls.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&m[3], Message::ToolResult { call_id, .. } if call_id == "a"));
        assert!(matches!(&m[4], Message::ToolResult { call_id, .. } if call_id == "b"));
        assert!(matches!(&m[5], Message::Assistant { text: Some(t), .. } if t == "done"));
    }

    #[test]
    fn consecutive_turns_stay_separate() {
        let items = vec![
            Item::Goal {
                text: "g".into(),
                memories: vec![],
            },
            call("a"),
            result("a"),
            call("b"),
            result("b"),
        ];
        let prompt = build_prompt("s", &items, vec![], None, false);
        assert_eq!(prompt.messages.len(), 6);
        assert_eq!(prompt.messages[0], Message::System("s".into()));
    }

    #[test]
    fn reasoning_opens_its_turn_and_feedback_reaches_the_model_as_user_text() {
        let reasoning = |id: &str| {
            Item::Reasoning(Reasoning {
                provider: "openai_responses".into(),
                item: serde_json::json!({"id": id}),
            })
        };
        let items = vec![
            Item::Goal {
                text: "g".into(),
                memories: vec![],
            },
            reasoning("r1"),
            call("a"),
            result("a"),
            Item::Guidance {
                text: "use t2".into(),
            },
            reasoning("r2"),
            Item::AssistantMessage { text: "7".into() },
            Item::Verification {
                passed: false,
                detail: "7 is wrong".into(),
            },
            Item::Reflection {
                outcome: crate::items::REVISED_PLAN.into(),
                lesson: "count again".into(),
            },
        ];
        let m = build_prompt("s", &items, vec![], None, false).messages;
        assert_eq!(m.len(), 8, "{m:#?}");
        assert!(
            matches!(&m[2], Message::Assistant { reasoning, tool_calls, .. }
            if reasoning.len() == 1 && tool_calls.len() == 1)
        );
        assert_eq!(m[4], Message::User("use t2".into()));
        assert!(
            matches!(&m[5], Message::Assistant { reasoning, text: Some(t), .. }
            if reasoning[0].item["id"] == "r2" && t == "7")
        );
        assert!(matches!(&m[6], Message::User(t) if t.contains("not accepted: 7 is wrong")));
        assert!(matches!(&m[7], Message::User(t) if t.contains("count again")));
    }

    #[test]
    fn a_compaction_replaces_what_it_covers_but_not_the_goal() {
        let items = vec![
            Item::Goal {
                text: "g".into(),
                memories: vec![],
            },
            call("a"),
            result("a"),
            call("b"),
            result("b"),
            Item::Compaction {
                covers: 3,
                summary: "called t once".into(),
            },
            Item::AssistantMessage {
                text: "done".into(),
            },
        ];
        let m = build_prompt("s", &items, vec![], None, false).messages;
        assert_eq!(m.len(), 6, "{m:#?}");
        assert_eq!(m[1], Message::User("g".into()));
        assert!(matches!(&m[2], Message::User(t) if t.starts_with(COMPACTION_PREFIX)));
        assert!(
            matches!(&m[3], Message::Assistant { tool_calls, .. } if tool_calls[0].call_id == "b")
        );
        assert!(matches!(&m[4], Message::ToolResult { call_id, .. } if call_id == "b"));
    }
}
