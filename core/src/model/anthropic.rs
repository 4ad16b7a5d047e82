//! The Anthropic Messages wire format (`POST {base_url}/messages`): tool calls are `tool_use`
//! blocks of the assistant's message, their results `tool_result` blocks of the next user
//! message, and thinking blocks go back unchanged (signature included) with the turn that
//! wrote them, as the API requires while tools are in use.

use serde_json::{json, Value};

use super::wire::{
    array_in, bad_response, http_error, json_body, request_body, snippet, Endpoint, HttpRequest,
    HttpResponse, Provider,
};
use crate::vocab::{
    ErrorClass, Message, ModelError, ModelReply, Prompt, Reasoning, ToolCallRequest, ToolChoice,
    Usage,
};

/// This wire format, as the registry lists it.
pub const PROVIDER: Provider = Provider {
    name: NAME,
    build_request,
    parse_response,
};
const NAME: &str = "anthropic";
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the API; a model's options may set another.
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub fn build_request(endpoint: &Endpoint<'_>, prompt: &Prompt) -> HttpRequest {
    let mut system = Vec::new();
    // Roles must alternate: consecutive user content (tool results, then guidance) is merged.
    let mut messages: Vec<(&str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, blocks: Vec<Value>| match messages.last_mut() {
        Some((last, content)) if *last == role && role == "user" => content.extend(blocks),
        _ if blocks.is_empty() => {}
        _ => messages.push((role, blocks)),
    };
    for message in &prompt.messages {
        match message {
            Message::System(text) => system.push(text.clone()),
            Message::User(text) => push("user", vec![json!({"type": "text", "text": text})]),
            Message::Assistant {
                reasoning,
                text,
                tool_calls,
            } => {
                let mut blocks: Vec<Value> = reasoning
                    .iter()
                    .filter(|r| r.provider == NAME)
                    .map(|r| r.item.clone())
                    .collect();
                blocks.extend(
                    text.iter()
                        .filter(|t| !t.trim().is_empty())
                        .map(|t| json!({"type": "text", "text": t})),
                );
                blocks.extend(tool_calls.iter().map(|c| {
                    json!({"type": "tool_use", "id": c.call_id, "name": c.name,
                           "input": input_object(&c.arguments)})
                }));
                push("assistant", blocks);
            }
            Message::ToolResult {
                call_id,
                output,
                is_error,
            } => push(
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": output,
                            "is_error": is_error}),
                ],
            ),
        }
    }
    if let Some(schema) = &prompt.output_schema {
        // The Messages API has no response format: the schema is an instruction, and the
        // answer is validated like every other provider's.
        system.push(format!(
            "Give your final answer as one JSON value matching this JSON Schema, with no other \
             text around it: {schema}"
        ));
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut owned = vec![
        ("model", json!(endpoint.model)),
        ("messages", Value::Array(messages)),
    ];
    if !system.is_empty() {
        owned.push(("system", json!(system.join("\n\n"))));
    }
    if !prompt.tools.is_empty() {
        let tools = prompt
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        owned.push(("tools", Value::Array(tools)));
        match prompt.tool_choice {
            ToolChoice::Auto => {}
            ToolChoice::Required => owned.push(("tool_choice", json!({"type": "any"}))),
            ToolChoice::None => owned.push(("tool_choice", json!({"type": "none"}))),
        }
    }
    if let Some(max) = prompt.max_output_tokens {
        owned.push(("max_tokens", json!(max)));
    }
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("anthropic-version".to_owned(), API_VERSION.to_owned()),
    ];
    if let Some(key) = endpoint.api_key {
        headers.push(("x-api-key".to_owned(), key.to_owned()));
    }
    HttpRequest {
        url: format!("{}/messages", endpoint.base_url.trim_end_matches('/')),
        headers,
        body: request_body(
            json!({"max_tokens": DEFAULT_MAX_TOKENS}),
            endpoint.options,
            owned,
        )
        .to_string(),
    }
}

/// `tool_use.input` must be an object; arguments another provider's model wrote as text that
/// is not one are passed under a key that says so.
fn input_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({ "unparsed_arguments": arguments }),
    }
}

pub fn parse_response(response: &HttpResponse) -> Result<ModelReply, ModelError> {
    if !(200..300).contains(&response.status) {
        return Err(classify_error(response));
    }
    let body = json_body(response)?;
    let content = array_in(&body, "content", response)?;
    let mut reply = ModelReply::default();
    let mut texts = Vec::new();
    for (i, block) in content.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => texts.extend(block.get("text").and_then(Value::as_str)),
            Some("tool_use") => {
                let field = |k: &str| block.get(k).and_then(Value::as_str);
                let (Some(id), Some(name)) = (field("id"), field("name")) else {
                    return Err(bad_response(
                        response,
                        format!("tool_use block {i} lacks an id or a name"),
                    ));
                };
                reply.tool_calls.push(ToolCallRequest {
                    call_id: id.to_owned(),
                    name: name.to_owned(),
                    arguments: block.get("input").unwrap_or(&json!({})).to_string(),
                });
            }
            Some("thinking") | Some("redacted_thinking") => reply.reasoning.push(Reasoning {
                provider: NAME.to_owned(),
                item: block.clone(),
            }),
            _ => {}
        }
    }
    if !texts.is_empty() {
        reply.text = Some(texts.join(""));
    }
    let n = |key: &str| {
        body.get("usage")
            .and_then(|u| u.get(key))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    // Anthropic counts cache reads and writes apart from input_tokens; ours include them.
    reply.usage = Usage {
        input_tokens: n("input_tokens")
            + n("cache_read_input_tokens")
            + n("cache_creation_input_tokens"),
        cached_tokens: n("cache_read_input_tokens"),
        output_tokens: n("output_tokens"),
        reasoning_tokens: 0,
    };
    reply.finish_reason = body
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(reply)
}

/// Anthropic's error body is `{"type": "error", "error": {"type", "message"}}`. 529
/// (overloaded) is retried; a prompt that is too long and an exhausted credit balance never
/// are.
pub fn classify_error(response: &HttpResponse) -> ModelError {
    let body: Option<Value> = serde_json::from_str(&response.body).ok();
    let field = |k: &str| {
        body.as_ref()
            .and_then(|b| b.get("error"))
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let kind = field("type");
    let message = match field("message") {
        "" => snippet(&response.body),
        m => m.to_owned(),
    };
    let lower = message.to_ascii_lowercase();
    let class = if lower.contains("prompt is too long") || lower.contains("context window") {
        Some(ErrorClass::ContextLength)
    } else if kind == "billing_error" || lower.contains("credit balance") {
        Some(ErrorClass::Quota)
    } else if kind == "overloaded_error" {
        Some(ErrorClass::RateLimited)
    } else {
        None
    };
    http_error(response, class, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ToolSpec;

    fn call(id: &str, arguments: &str) -> ToolCallRequest {
        ToolCallRequest {
            call_id: id.into(),
            name: "f".into(),
            arguments: arguments.into(),
        }
    }

    fn result(id: &str, is_error: bool) -> Message {
        Message::ToolResult {
            call_id: id.into(),
            output: "out".into(),
            is_error,
        }
    }

    #[test]
    fn tool_results_and_guidance_merge_into_one_user_turn() {
        let prompt = Prompt {
            messages: vec![
                Message::System("be brief".into()),
                Message::User("goal".into()),
                Message::Assistant {
                    reasoning: vec![Reasoning {
                        provider: NAME.into(),
                        item: json!({"type": "thinking", "thinking": "t", "signature": "sig"}),
                    }],
                    text: Some("checking".into()),
                    tool_calls: vec![call("a", "{\"x\":1}"), call("b", "not json")],
                },
                result("a", false),
                result("b", true),
                Message::User("use table t2".into()),
            ],
            tools: vec![ToolSpec {
                name: "f".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Required,
            max_output_tokens: None,
            output_schema: Some(json!({"type": "integer"})),
        };
        let options = json!({"max_tokens": 100});
        let req = build_request(
            &Endpoint {
                base_url: "http://h/v1/",
                model: "claude",
                api_key: Some("sk"),
                options: &options,
            },
            &prompt,
        );
        assert_eq!(req.url, "http://h/v1/messages");
        assert!(req.headers.contains(&("x-api-key".into(), "sk".into())));
        assert!(req
            .headers
            .contains(&("anthropic-version".into(), API_VERSION.into())));
        let body: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["max_tokens"], 100);
        assert!(body["system"].as_str().unwrap().starts_with("be brief"));
        assert!(body["system"].as_str().unwrap().contains("\"integer\""));
        let m = body["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3, "{m:#?}");
        assert_eq!(m[1]["content"][0]["signature"], "sig");
        assert_eq!(m[1]["content"][2]["input"], json!({"x": 1}));
        assert_eq!(
            m[1]["content"][3]["input"],
            json!({"unparsed_arguments": "not json"})
        );
        let user: Vec<&str> = m[2]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(user, ["tool_result", "tool_result", "text"]);
        assert_eq!(m[2]["content"][1]["is_error"], true);
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(body["tool_choice"], json!({"type": "any"}));
    }

    #[test]
    fn content_blocks_become_text_calls_and_thinking() {
        let reply = parse_response(&HttpResponse {
            status: 200,
            retry_after: None,
            body: json!({"type": "message", "role": "assistant", "stop_reason": "tool_use",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
                "usage": {"input_tokens": 5, "cache_read_input_tokens": 20,
                          "cache_creation_input_tokens": 1, "output_tokens": 7}})
            .to_string(),
        })
        .unwrap();
        assert_eq!(reply.text.as_deref(), Some("Checking."));
        assert_eq!(reply.tool_calls[0].arguments, "{\"a\":1}");
        assert_eq!(reply.reasoning[0].item["signature"], "s");
        assert_eq!(
            (reply.usage.input_tokens, reply.usage.cached_tokens),
            (26, 20)
        );
        assert_eq!(reply.finish_reason.as_deref(), Some("tool_use"));
    }

    #[test]
    fn errors_are_classified() {
        let err = |status, kind: &str, message: &str| {
            classify_error(&HttpResponse {
                status,
                retry_after: None,
                body: json!({"type": "error", "error": {"type": kind, "message": message}})
                    .to_string(),
            })
            .class
        };
        assert_eq!(
            err(529, "overloaded_error", "Overloaded"),
            ErrorClass::RateLimited
        );
        assert_eq!(
            err(
                400,
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum"
            ),
            ErrorClass::ContextLength
        );
        assert_eq!(
            err(
                400,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API."
            ),
            ErrorClass::Quota
        );
        assert_eq!(
            err(401, "authentication_error", "invalid x-api-key"),
            ErrorClass::Auth
        );
        assert_eq!(err(500, "api_error", "oops"), ErrorClass::Server);
        assert_eq!(
            err(400, "invalid_request_error", "bad"),
            ErrorClass::BadRequest
        );
        assert!(!ErrorClass::ContextLength.retryable() && ErrorClass::RateLimited.retryable());
        let garbage = parse_response(&HttpResponse {
            status: 200,
            retry_after: None,
            body: "{\"type\": \"message\"}".into(),
        });
        assert_eq!(garbage.unwrap_err().class, ErrorClass::BadResponse);
    }
}
