//! Context compaction: when a task's prompt nears its model's context window, the older part of
//! the log is summarised into one compaction item that stands in for it in later prompts (see
//! [`crate::context::build_prompt`]). The goal and the most recent turns stay verbatim, a tool
//! call is never separated from its result, and the full log stays in `steps`.
//!
//! The summary is structured, written here without a model call: what was called with which
//! arguments and what came back, each cut short, plus the previous summary. A model marked
//! `writes_summaries` rewrites it in its own words ([`summary_prompt`], [`model_written`]); the
//! structured one stays when that call fails.

use crate::items::{call_arguments, latest_compaction, Item};
use crate::vocab::{one_line, Message, Prompt, ToolChoice};

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

/// How the request for a model-written summary begins (the scripted test server keys on it).
pub const SUMMARY_INSTRUCTIONS: &str = "You summarise the earlier steps of a task for the agent \
     doing it. Keep every fact a later step may need: numbers, names, what each tool returned, \
     what failed. Plain text, at most 100 words, no preamble.";

/// The longest model-written summary asked for, in tokens.
pub const SUMMARY_MAX_TOKENS: u32 = 200;

/// The short, bounded request for a model-written version of `compaction` (from [`plan`]):
/// the structured summary in, a summary in the model's words out, no tools.
pub fn summary_prompt(goal: &str, compaction: &Item) -> Option<Prompt> {
    let Item::Compaction { summary, .. } = compaction else {
        return None;
    };
    Some(Prompt {
        messages: vec![
            Message::System(SUMMARY_INSTRUCTIONS.to_owned()),
            // The goal last: the scripted test server reads its script up to the end.
            Message::User(format!(
                "Write the summary of these steps.\n\nThe steps so far:\n{summary}\n\nThe task: {goal}"
            )),
        ],
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
        output_schema: None,
        max_output_tokens: Some(SUMMARY_MAX_TOKENS),
    })
}

/// `compaction` with the model's summary instead of the structured one, unless the model
/// wrote nothing.
pub fn model_written(compaction: Item, text: Option<&str>) -> Item {
    match (compaction, text.map(str::trim).filter(|t| !t.is_empty())) {
        (Item::Compaction { covers, .. }, Some(text)) => Item::Compaction {
            covers,
            summary: crate::vocab::truncate(text, MAX_SUMMARY_CHARS),
        },
        (compaction, _) => compaction,
    }
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

    #[test]
    fn a_model_written_summary_replaces_the_structured_one_unless_empty() {
        let structured = Item::Compaction {
            covers: 4,
            summary: "- called f({}) -> 42".into(),
        };
        let prompt = summary_prompt("find x", &structured).unwrap();
        assert_eq!(prompt.max_output_tokens, Some(SUMMARY_MAX_TOKENS));
        assert!(prompt.tools.is_empty());
        assert!(matches!(&prompt.messages[1], Message::User(t)
            if t.contains("called f({}) -> 42") && t.ends_with("The task: find x")));
        assert_eq!(
            model_written(structured.clone(), Some(" f gave 42 ")),
            Item::Compaction {
                covers: 4,
                summary: "f gave 42".into()
            }
        );
        assert_eq!(model_written(structured.clone(), Some("  ")), structured);
        assert_eq!(model_written(structured.clone(), None), structured);
        assert!(summary_prompt("g", &Item::AssistantMessage { text: "x".into() }).is_none());
    }

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
