//! Context compaction: when a task's prompt nears its model's context window, the older part of
//! the log is summarised into one compaction item that stands in for it in later prompts (see
//! [`crate::context::build_prompt`]). The goal and the most recent turns stay verbatim, a tool
//! call is never separated from its result, and the full log stays in `steps`.
//!
//! The summary is structured, written here without a model call: what was called with which
//! arguments and what came back, each cut short, plus the previous summary.

use crate::items::{call_arguments, latest_compaction, Item};
use crate::vocab::{one_line, Message, Prompt};

/// Compact when the estimated prompt passes this share of the context window.
pub const THRESHOLD_PERCENT: usize = 75;
/// Model turns kept verbatim after a compaction.
pub const RECENT_TURNS: usize = 2;
/// Longest summary; its oldest lines go first.
const MAX_SUMMARY_CHARS: usize = 6000;

/// A rough token count of a prompt: four bytes of text per token, the usual rule of thumb for
/// English and JSON. Providers count exactly only after the request has been sent.
pub fn estimate_tokens(prompt: &Prompt) -> usize {
    let text: usize = prompt
        .messages
        .iter()
        .map(|m| match m {
            Message::System(t) | Message::User(t) => t.len(),
            Message::Assistant {
                reasoning,
                text,
                tool_calls,
            } => {
                reasoning
                    .iter()
                    .map(|r| r.item.to_string().len())
                    .sum::<usize>()
                    + text.as_ref().map_or(0, String::len)
                    + tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len())
                        .sum::<usize>()
            }
            Message::ToolResult { output, .. } => output.len(),
        })
        .sum();
    let tools: usize = prompt
        .tools
        .iter()
        .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
        .sum();
    (text + tools) / 4
}

/// The compaction to append when `prompt_tokens` (the prompt built from `items`) passes the
/// threshold of `context_window`; `None` when it fits, or when nothing old enough is left to
/// summarise.
pub fn plan(items: &[Item], prompt_tokens: usize, context_window: usize) -> Option<Item> {
    if prompt_tokens * 100 < context_window * THRESHOLD_PERCENT {
        return None;
    }
    let (previous_covers, previous_summary) = latest_compaction(items).unwrap_or((0, ""));
    let covers = boundary(items)?;
    if covers <= previous_covers {
        return None;
    }
    let mut lines: Vec<String> = Vec::new();
    if !previous_summary.is_empty() {
        lines.push(previous_summary.to_owned());
    }
    let span = &items[previous_covers..covers];
    let calls = call_arguments(span);
    for item in span {
        match item {
            Item::ToolResult {
                call_id,
                name,
                output,
                is_error,
            } => {
                let arguments = calls.get(call_id.as_str()).copied().unwrap_or("");
                lines.push(format!(
                    "- called {name}({}) -> {}{}",
                    one_line(arguments, 160),
                    if *is_error { "error: " } else { "" },
                    one_line(output, 240)
                ));
            }
            Item::AssistantMessage { text } => {
                lines.push(format!("- you said: {}", one_line(text, 240)))
            }
            Item::Guidance { text } => {
                lines.push(format!("- the user said: {}", one_line(text, 240)))
            }
            Item::Verification {
                passed: false,
                detail,
            } => lines.push(format!(
                "- an answer was rejected: {}",
                one_line(detail, 240)
            )),
            Item::Reflection { lesson, .. } => {
                lines.push(format!("- plan: {}", one_line(lesson, 240)))
            }
            _ => {}
        }
    }
    let mut summary = lines.join("\n");
    while summary.len() > MAX_SUMMARY_CHARS {
        match summary.find('\n') {
            Some(cut) => summary.drain(..=cut),
            None => break,
        };
    }
    Some(Item::Compaction { covers, summary })
}

/// Where the verbatim tail starts: at the start of the [`RECENT_TURNS`]-th last model turn,
/// which is never between a tool call and its result. `None` if there are not enough turns.
fn boundary(items: &[Item]) -> Option<usize> {
    let turn_starts: Vec<usize> = (1..items.len())
        .filter(|&i| starts_turn(&items[i]) && !starts_turn(&items[i - 1]))
        .collect();
    let start = *turn_starts.iter().rev().nth(RECENT_TURNS - 1)?;
    (start > 1).then_some(start)
}

/// The first item a model turn writes.
fn starts_turn(item: &Item) -> bool {
    matches!(
        item,
        Item::Reasoning(_) | Item::AssistantMessage { .. } | Item::ToolCall { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::build_prompt;

    fn turn(n: usize, output: &str) -> Vec<Item> {
        vec![
            Item::ToolCall {
                call_id: format!("c{n}"),
                name: "sql_query".into(),
                arguments: format!("{{\"query\": \"select {n}\"}}"),
            },
            Item::ToolResult {
                call_id: format!("c{n}"),
                name: "sql_query".into(),
                output: output.into(),
                is_error: false,
            },
        ]
    }

    fn log(turns: usize) -> Vec<Item> {
        let mut items = vec![Item::Goal {
            text: "goal".into(),
            memories: vec![],
        }];
        for n in 0..turns {
            items.extend(turn(n, &"x".repeat(400)));
        }
        items
    }

    #[test]
    fn a_prompt_that_fits_is_left_alone() {
        assert_eq!(plan(&log(5), 100, 1000), None);
    }

    #[test]
    fn older_turns_are_summarised_and_the_last_ones_stay_with_their_results() {
        let mut items = log(5);
        let Some(Item::Compaction { covers, summary }) = plan(&items, 800, 1000) else {
            panic!("should compact")
        };
        // Goal + 3 turns of 2 items are covered; the last 2 turns stay.
        assert_eq!(covers, 7);
        assert!(matches!(items[covers], Item::ToolCall { .. }));
        assert_eq!(summary.lines().count(), 3, "{summary}");
        assert!(summary.starts_with("- called sql_query({\"query\": \"select 0\"}) -> xxx"));
        items.push(Item::Compaction {
            covers,
            summary: summary.clone(),
        });
        let before = estimate_tokens(&build_prompt(
            "s",
            &items[..items.len() - 1],
            vec![],
            None,
            false,
        ));
        let after = estimate_tokens(&build_prompt("s", &items, vec![], None, false));
        assert!(after < before, "{after} < {before}");
        // Nothing new to cover: no second compaction.
        assert_eq!(plan(&items, 800, 1000), None);
        // Later turns fold the earlier summary into the next one.
        items.extend(turn(9, "late"));
        items.extend(turn(10, "later"));
        let Some(Item::Compaction { summary: next, .. }) = plan(&items, 800, 1000) else {
            panic!()
        };
        assert!(next.starts_with(&summary), "{next}");
    }

    #[test]
    fn too_few_turns_are_not_compacted() {
        assert_eq!(plan(&log(2), 10_000, 1000), None);
    }
}
