//! Perceive: turn the step log into the prompt for the next decide.

use serde_json::Value;

use crate::items::Item;
use crate::model::ToolCallRequest;

/// A tool as the model sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// A provider-neutral chat message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    System(String),
    User(String),
    Assistant {
        text: Option<String>,
        tool_calls: Vec<ToolCallRequest>,
    },
    ToolResult {
        call_id: String,
        output: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
}

/// Builds the prompt from the instructions and the log. Lessons recalled at perceive time join
/// the system message; text and tool calls of one model turn stay one assistant message, and
/// every tool result follows the assistant message that asked for it. Errors and reflections
/// are for people reading the trace, not for the model.
pub fn build_prompt(instructions: &str, items: &[Item], tools: Vec<ToolSpec>) -> Prompt {
    let mut messages = vec![Message::System(instructions.to_owned())];
    let mut turn: Option<(Option<String>, Vec<ToolCallRequest>)> = None;
    let flush = |turn: &mut Option<(Option<String>, Vec<ToolCallRequest>)>,
                 out: &mut Vec<Message>| {
        if let Some((text, tool_calls)) = turn.take() {
            out.push(Message::Assistant { text, tool_calls });
        }
    };
    for item in items {
        match item {
            Item::Goal { text, memories } => {
                flush(&mut turn, &mut messages);
                if !memories.is_empty() {
                    if let Some(Message::System(system)) = messages.first_mut() {
                        system.push_str("\n\nLessons from your earlier tasks:");
                        for lesson in memories {
                            system.push_str("\n- ");
                            system.push_str(lesson);
                        }
                    }
                }
                messages.push(Message::User(text.clone()));
            }
            Item::AssistantMessage { text } => {
                if turn
                    .as_ref()
                    .is_some_and(|(t, calls)| t.is_some() || !calls.is_empty())
                {
                    flush(&mut turn, &mut messages);
                }
                turn.get_or_insert((None, Vec::new())).0 = Some(text.clone());
            }
            Item::ToolCall {
                call_id,
                name,
                arguments,
            } => {
                turn.get_or_insert((None, Vec::new()))
                    .1
                    .push(ToolCallRequest {
                        call_id: call_id.clone(),
                        name: name.clone(),
                        arguments: arguments.clone(),
                    });
            }
            Item::ToolResult {
                call_id, output, ..
            } => {
                flush(&mut turn, &mut messages);
                messages.push(Message::ToolResult {
                    call_id: call_id.clone(),
                    output: output.clone(),
                });
            }
            Item::Error { .. } | Item::Reflection { .. } => {}
        }
    }
    flush(&mut turn, &mut messages);
    Prompt { messages, tools }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::Phase;

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
                memories: vec!["lesson one".into()],
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
        let prompt = build_prompt("be brief", &items, vec![]);
        let m = &prompt.messages;
        assert_eq!(m.len(), 6, "{m:#?}");
        assert_eq!(
            m[0],
            Message::System("be brief\n\nLessons from your earlier tasks:\n- lesson one".into())
        );
        assert_eq!(m[1], Message::User("g".into()));
        match &m[2] {
            Message::Assistant { text, tool_calls } => {
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
        let prompt = build_prompt("s", &items, vec![]);
        assert_eq!(prompt.messages.len(), 6);
        assert_eq!(prompt.messages[0], Message::System("s".into()));
    }
}
