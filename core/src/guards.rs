//! What the loop does about the ways a real model goes wrong: an answer made up without
//! calling a tool, the same call again and again, a call written out as text, output its
//! server could not parse, an answer that ignores the schema or fails its check for the same
//! reason again. Each has one defined response — feedback, a changed
//! `tool_choice` for the next decide, a bounded retry — and then a failure code of its own,
//! never a silent loop until `max_steps`. Every rule reads the log, so a resumed task keeps
//! to it.

use serde_json::Value;

use crate::items::Item;
use crate::vocab::{ErrorClass, ModelReply, ToolCallRequest, ToolChoice};

/// The detail of a rejected answer that came before any tool call had a result.
pub const NO_DATA_YET: &str = "you answered without calling any tool, but this task needs data \
     from its tools. Call a tool first, then answer from its result.";

/// After this many answers rejected for the same reason (no data, the schema), the next one
/// ends the task instead of being sent back again.
pub const SAME_REJECTIONS_BEFORE_FAILING: usize = 2;

/// Whether a tool call of the task has a result: data, or an error the answer can report.
/// (An answer after failed calls is the model's to word; one with no call at all rests on
/// nothing.)
pub fn has_tool_result(items: &[Item]) -> bool {
    items.iter().any(|i| matches!(i, Item::ToolResult { .. }))
}

/// How many answers of the task were rejected for a reason starting with `reason` (e.g.
/// [`NO_DATA_YET`], or [`SCHEMA_MISMATCH`]).
pub fn rejections(items: &[Item], reason: &str) -> usize {
    items
        .iter()
        .filter(|i| matches!(i, Item::Verification { passed: false, detail } if detail.starts_with(reason)))
        .count()
}

/// How the detail of an answer rejected by the task's `output_schema` begins.
pub const SCHEMA_MISMATCH: &str = "it does not match the required JSON Schema:";

/// A call's identity for repeat detection: its name and its arguments as JSON values (so key
/// order and spacing do not matter), or as text when they are not JSON.
fn same_call(a_name: &str, a_args: &str, b: &ToolCallRequest) -> bool {
    if a_name != b.name {
        return false;
    }
    let parse = |s: &str| serde_json::from_str::<Value>(if s.trim().is_empty() { "{}" } else { s });
    match (parse(a_args), parse(&b.arguments)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a_args.trim() == b.arguments.trim(),
    }
}

/// How many earlier calls in the log were this same call.
pub fn earlier_identical(items: &[Item], call: &ToolCallRequest) -> usize {
    items
        .iter()
        .filter(|i| match i {
            Item::ToolCall {
                name,
                arguments,
                call_id,
            } => call_id != &call.call_id && same_call(name, arguments, call),
            _ => false,
        })
        .count()
}

/// A call that repeats an earlier one this many times ends the task: the first repeat was
/// answered with the earlier result.
pub const REPEATS_BEFORE_FAILING: usize = 2;

/// How the result of a repeated call begins its second sentence (the template for small
/// models, scripts/lib/qwen_tools.jinja, keys on it to ask for an answer).
pub const REPEATED_CALL: &str = "was called with these arguments before, so it was not run again.";

/// The result a repeated call gets instead of running again: the earlier result, once more.
/// (Told only that it repeated itself, a small model tends to repeat that message as its
/// answer; given the result, it answers from it.)
pub fn repeated_call_output(tool: &str, earlier: &str) -> String {
    format!("{tool} {REPEATED_CALL} Its result: {earlier}")
}

/// The result of the first earlier call identical to `call`, and whether it was an error.
pub fn earlier_result<'a>(items: &'a [Item], call: &ToolCallRequest) -> Option<(&'a str, bool)> {
    let first = items.iter().find_map(|i| match i {
        Item::ToolCall {
            name,
            arguments,
            call_id,
        } if call_id != &call.call_id && same_call(name, arguments, call) => Some(call_id),
        _ => None,
    })?;
    items.iter().find_map(|i| match i {
        Item::ToolResult {
            call_id,
            output,
            is_error,
            ..
        } if call_id == first => Some((output.as_str(), *is_error)),
        _ => None,
    })
}

/// A reply whose whole text is a tool call written out — `{"name": <a tool of the task>,
/// "arguments": {...}}`, as a small model writes one when its server did not parse it (under
/// `tool_choice` "none", say) — as the reply with that call, so that it runs instead of
/// becoming the answer. `None` for any other reply.
pub fn call_in_text(
    reply: &ModelReply,
    turn: i32,
    is_tool: &dyn Fn(&str) -> bool,
) -> Option<ModelReply> {
    if !reply.tool_calls.is_empty() {
        return None;
    }
    let text = reply.text.as_deref()?.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text)
        .trim();
    let Ok(Value::Object(call)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let name = call.get("name")?.as_str()?;
    let arguments = call.get("arguments").filter(|a| a.is_object())?;
    if call.len() != 2 || !is_tool(name) {
        return None;
    }
    Some(ModelReply {
        text: None,
        tool_calls: vec![ToolCallRequest {
            call_id: format!("text_call_{turn}"),
            name: name.to_owned(),
            arguments: arguments.to_string(),
        }],
        ..reply.clone()
    })
}

/// The `tool_choice` of the next decide, from the log:
/// - after the server could not parse the model's output, the other way out: a required call
///   when no data has come back yet, else a text answer;
/// - while the task needs data and has none, a required call;
/// - otherwise the model chooses. (Also after a repeated call: its result asks for an answer,
///   and with "none" llama.cpp's server lets a small model write the call out as text.)
pub fn tool_choice(items: &[Item], needs_data: bool) -> ToolChoice {
    if unparsable_again(items) {
        return if has_tool_result(items) {
            ToolChoice::None
        } else {
            ToolChoice::Required
        };
    }
    if needs_data && !has_tool_result(items) {
        ToolChoice::Required
    } else {
        ToolChoice::Auto
    }
}

/// Whether the previous decide already failed because its output could not be parsed, so
/// a second such failure ends the task instead of trying again.
pub fn unparsable_again(items: &[Item]) -> bool {
    matches!(items.last(), Some(Item::Error { class, .. }) if class == ErrorClass::UnparsableOutput.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::Phase;

    fn call(id: &str, name: &str, args: &str) -> ToolCallRequest {
        ToolCallRequest {
            call_id: id.into(),
            name: name.into(),
            arguments: args.into(),
        }
    }

    fn result(id: &str, output: &str, is_error: bool) -> Item {
        Item::ToolResult {
            call_id: id.into(),
            name: "f".into(),
            output: output.into(),
            is_error,
        }
    }

    #[test]
    fn a_task_that_needs_data_must_call_a_tool_until_one_has_a_result() {
        let mut items = vec![Item::Goal {
            text: "g".into(),
            memories: vec![],
        }];
        assert_eq!(tool_choice(&items, true), ToolChoice::Required);
        assert_eq!(tool_choice(&items, false), ToolChoice::Auto);
        items.push(Item::tool_call(&call("a", "f", "{}")));
        assert_eq!(
            tool_choice(&items, true),
            ToolChoice::Required,
            "no result yet"
        );
        items.push(result("a", "ERROR: no such table", true));
        assert!(
            has_tool_result(&items),
            "an error is for the answer to report"
        );
        assert_eq!(tool_choice(&items, true), ToolChoice::Auto);
    }

    #[test]
    fn repeats_are_the_same_name_and_json_arguments_whatever_the_spacing() {
        let items = vec![
            Item::tool_call(&call("a", "f", "{\"x\": 1, \"y\": [2]}")),
            result("a", "42", false),
        ];
        assert_eq!(
            earlier_identical(&items, &call("b", "f", "{\"y\":[2],\"x\":1}")),
            1
        );
        assert_eq!(
            earlier_identical(&items, &call("b", "f", "{\"x\": 2, \"y\": [2]}")),
            0
        );
        assert_eq!(
            earlier_identical(&items, &call("b", "g", "{\"x\": 1, \"y\": [2]}")),
            0
        );
        assert_eq!(
            earlier_identical(&items, &call("a", "f", "{\"x\": 1, \"y\": [2]}")),
            0,
            "itself"
        );
        let broken = vec![Item::tool_call(&call("a", "f", "{x"))];
        assert_eq!(earlier_identical(&broken, &call("b", "f", " {x ")), 1);
        assert_eq!(
            earlier_identical(
                &[Item::tool_call(&call("a", "f", ""))],
                &call("b", "f", "{}")
            ),
            1
        );
    }

    #[test]
    fn a_repeat_is_answered_with_the_earlier_result() {
        let items = vec![
            Item::tool_call(&call("a", "f", "{}")),
            result("a", "42", false),
            Item::tool_call(&call("b", "f", "{}")),
            result("b", "f was called…", false),
        ];
        assert_eq!(
            earlier_result(&items, &call("c", "f", "{ }")),
            Some(("42", false))
        );
        assert_eq!(earlier_result(&items, &call("c", "f", "{\"x\": 1}")), None);
        let text = repeated_call_output("f", "42");
        assert!(
            text.starts_with("f was called") && text.ends_with("Its result: 42"),
            "{text}"
        );
        assert_eq!(tool_choice(&items, true), ToolChoice::Auto);
    }

    #[test]
    fn unparsable_output_switches_the_choice_once() {
        let error = Item::Error {
            phase: Phase::Decide,
            class: ErrorClass::UnparsableOutput.as_str().into(),
            message: "HTTP 500".into(),
        };
        let mut items = vec![error.clone()];
        assert_eq!(tool_choice(&items, false), ToolChoice::Required);
        assert!(unparsable_again(&items));
        items.insert(0, result("a", "42", false));
        assert_eq!(tool_choice(&items, false), ToolChoice::None);
        items.push(Item::AssistantMessage { text: "hi".into() });
        assert!(!unparsable_again(&items));
    }

    #[test]
    fn a_call_written_as_text_is_taken_as_the_call() {
        let is_tool = |name: &str| name == "units_sold";
        let reply = |text: &str| ModelReply {
            text: Some(text.into()),
            ..ModelReply::default()
        };
        let spelled = r#" {"name": "units_sold", "arguments": {"product": "mug"}} "#;
        let call = call_in_text(&reply(spelled), 3, &is_tool).expect("a call");
        assert_eq!(call.text, None);
        assert_eq!(call.tool_calls[0].name, "units_sold");
        assert_eq!(call.tool_calls[0].call_id, "text_call_3");
        assert_eq!(call.tool_calls[0].arguments, r#"{"product":"mug"}"#);
        let fenced = format!("```json\n{}\n```", spelled.trim());
        assert!(call_in_text(&reply(&fenced), 3, &is_tool).is_some());
        for answer in [
            r#"{"name": "nope", "arguments": {}}"#,
            r#"{"name": "units_sold", "arguments": {}, "units": 3}"#,
            r#"{"name": "units_sold"}"#,
            r#"{"units": 398}"#,
            "398 units of mug",
        ] {
            assert_eq!(call_in_text(&reply(answer), 3, &is_tool), None, "{answer}");
        }
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let reject = |d: &str| Item::Verification {
            passed: false,
            detail: d.into(),
        };
        let items = vec![
            reject(NO_DATA_YET),
            result("a", "x", true),
            reject(&format!("{SCHEMA_MISMATCH} missing n")),
            reject(NO_DATA_YET),
        ];
        assert_eq!(rejections(&items, NO_DATA_YET), 2);
        assert_eq!(rejections(&items, SCHEMA_MISMATCH), 1);
    }
}
