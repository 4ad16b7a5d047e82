//! The OpenAI Responses wire format (`POST {base_url}/responses`): the conversation is a list
//! of input items — messages, `function_call` and `function_call_output` — and the answer a list
//! of output items. Reasoning items come back with their encrypted content (the request asks
//! for it and does not store the response at OpenAI) and are sent again in later requests, so
//! a reasoning model keeps its chain of thought across the tool calls of a task.

use serde_json::{json, Value};

use super::openai_error;
use super::wire::{
    array_in, bad_response, json_body, openai_tool_choice, request_body, Endpoint, HttpRequest,
    HttpResponse, Provider,
};
use crate::vocab::{
    ErrorClass, Message, ModelError, ModelReply, Prompt, Reasoning, ToolCallRequest, Usage,
};

/// This wire format, as the registry lists it.
pub const PROVIDER: Provider = Provider {
    name: NAME,
    build_request,
    parse_response,
};
const NAME: &str = "openai_responses";

pub fn build_request(endpoint: &Endpoint<'_>, prompt: &Prompt) -> HttpRequest {
    let mut instructions = Vec::new();
    let mut input = Vec::new();
    for message in &prompt.messages {
        match message {
            Message::System(text) => instructions.push(text.as_str()),
            Message::User(text) => {
                input.push(json!({"type": "message", "role": "user", "content": text}))
            }
            Message::Assistant {
                reasoning,
                text,
                tool_calls,
            } => {
                input.extend(
                    reasoning
                        .iter()
                        .filter(|r| r.provider == NAME)
                        .map(|r| r.item.clone()),
                );
                if let Some(text) = text {
                    input.push(json!({"type": "message", "role": "assistant", "content": text}));
                }
                input.extend(tool_calls.iter().map(|c| {
                    json!({"type": "function_call", "call_id": c.call_id, "name": c.name,
                           "arguments": c.arguments})
                }));
            }
            Message::ToolResult {
                call_id, output, ..
            } => input.push(
                json!({"type": "function_call_output", "call_id": call_id, "output": output}),
            ),
        }
    }
    // Defaults the options may change: without storage at OpenAI, reasoning must travel back
    // encrypted.
    let defaults = json!({"store": false, "include": ["reasoning.encrypted_content"]});
    let mut owned = vec![
        ("model", json!(endpoint.model)),
        ("instructions", json!(instructions.join("\n\n"))),
        ("input", Value::Array(input)),
    ];
    if !prompt.tools.is_empty() {
        let tools = prompt
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "name": t.name, "description": t.description,
                       "parameters": t.parameters, "strict": false})
            })
            .collect();
        owned.push(("tools", Value::Array(tools)));
        owned.extend(openai_tool_choice(prompt.tool_choice).map(|c| ("tool_choice", c)));
    }
    if let Some(schema) = prompt.answer_schema() {
        owned.push((
            "text",
            json!({"format": {"type": "json_schema", "name": "result", "schema": schema,
                              "strict": false}}),
        ));
    }
    if let Some(max) = prompt.max_output_tokens {
        owned.push(("max_output_tokens", json!(max)));
    }
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(key) = endpoint.api_key {
        headers.push(("Authorization".to_owned(), format!("Bearer {key}")));
    }
    HttpRequest {
        url: format!("{}/responses", endpoint.base_url.trim_end_matches('/')),
        headers,
        body: request_body(defaults, endpoint.options, owned).to_string(),
    }
}

pub fn parse_response(response: &HttpResponse) -> Result<ModelReply, ModelError> {
    if !(200..300).contains(&response.status) {
        return Err(openai_error::classify(response));
    }
    let body = json_body(response)?;
    if body.get("status").and_then(Value::as_str) == Some("failed") {
        // A response that failed after it was accepted: the error object is OpenAI's.
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("the response failed");
        let class = match body.pointer("/error/code").and_then(Value::as_str) {
            Some("rate_limit_exceeded") => ErrorClass::RateLimited,
            Some("context_length_exceeded") => ErrorClass::ContextLength,
            Some("insufficient_quota") => ErrorClass::Quota,
            _ => ErrorClass::Server,
        };
        return Err(ModelError {
            status: Some(response.status),
            ..ModelError::new(class, message)
        });
    }
    let output = array_in(&body, "output", response)?;
    let mut reply = ModelReply::default();
    let mut texts = Vec::new();
    for (i, item) in output.iter().enumerate() {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => {
                            texts.extend(part.get("text").and_then(Value::as_str))
                        }
                        Some("refusal") => {
                            texts.extend(part.get("refusal").and_then(Value::as_str))
                        }
                        _ => {}
                    }
                }
            }
            Some("function_call") => {
                let field = |k: &str| item.get(k).and_then(Value::as_str);
                let name = field("name").ok_or_else(|| {
                    bad_response(response, format!("function_call item {i} has no name"))
                })?;
                let call_id = field("call_id").or_else(|| field("id")).ok_or_else(|| {
                    bad_response(response, format!("function_call item {i} has no call_id"))
                })?;
                reply.tool_calls.push(ToolCallRequest {
                    call_id: call_id.to_owned(),
                    name: name.to_owned(),
                    arguments: field("arguments").unwrap_or("{}").to_owned(),
                });
            }
            Some("reasoning") => reply.reasoning.push(Reasoning {
                provider: NAME.to_owned(),
                item: item.clone(),
            }),
            // Built-in tool items (web search, …) are not ours to run or resend.
            _ => {}
        }
    }
    if !texts.is_empty() {
        reply.text = Some(texts.join(""));
    }
    let n = |path: &str| body.pointer(path).and_then(Value::as_i64).unwrap_or(0);
    reply.usage = Usage {
        input_tokens: n("/usage/input_tokens"),
        cached_tokens: n("/usage/input_tokens_details/cached_tokens"),
        output_tokens: n("/usage/output_tokens"),
        reasoning_tokens: n("/usage/output_tokens_details/reasoning_tokens"),
    };
    reply.finish_reason = match body.get("status").and_then(Value::as_str) {
        Some("incomplete") => body
            .pointer("/incomplete_details/reason")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(Some("incomplete".into())),
        other => other.map(str::to_owned),
    };
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{ToolChoice, ToolSpec};

    fn ok(body: Value) -> HttpResponse {
        HttpResponse {
            status: 200,
            retry_after: None,
            body: body.to_string(),
        }
    }

    #[test]
    fn the_log_becomes_input_items_and_own_reasoning_travels_back() {
        let call = ToolCallRequest {
            call_id: "c1".into(),
            name: "f".into(),
            arguments: "{}".into(),
        };
        let prompt = Prompt {
            messages: vec![
                Message::System("be brief".into()),
                Message::User("goal".into()),
                Message::Assistant {
                    reasoning: vec![
                        Reasoning {
                            provider: NAME.into(),
                            item: json!({"type": "reasoning", "id": "rs_1", "encrypted_content": "e"}),
                        },
                        Reasoning {
                            provider: "anthropic".into(),
                            item: json!({"type": "thinking"}),
                        },
                    ],
                    text: Some("looking".into()),
                    tool_calls: vec![call],
                },
                Message::ToolResult {
                    call_id: "c1".into(),
                    output: "1".into(),
                    is_error: false,
                },
            ],
            tools: vec![ToolSpec {
                name: "f".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_choice: ToolChoice::Required,
            max_output_tokens: None,
            output_schema: None,
        };
        let options = json!({"store": true, "input": "ignored"});
        let req = build_request(
            &Endpoint {
                base_url: "http://h/v1",
                model: "o4-mini",
                api_key: Some("sk"),
                options: &options,
            },
            &prompt,
        );
        assert_eq!(req.url, "http://h/v1/responses");
        let body: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["instructions"], "be brief");
        assert_eq!(body["store"], true, "options may change the defaults");
        let types: Vec<&str> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "message",
                "reasoning",
                "message",
                "function_call",
                "function_call_output"
            ]
        );
        assert_eq!(body["input"][1]["encrypted_content"], "e");
        assert_eq!(body["tools"][0]["name"], "f");
        assert_eq!(body["tool_choice"], "required");
    }

    #[test]
    fn output_items_become_text_calls_and_reasoning() {
        let reply = parse_response(&ok(json!({
            "object": "response", "status": "completed",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "e"},
                {"type": "message", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Let me check."}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
                 "arguments": "{\"a\":1}"}],
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
                      "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 3}}
        })))
        .unwrap();
        assert_eq!(reply.text.as_deref(), Some("Let me check."));
        assert_eq!(reply.tool_calls[0].call_id, "call_1");
        assert_eq!(reply.reasoning.len(), 1);
        assert_eq!(reply.usage.reasoning_tokens, 3);
        assert_eq!(reply.usage.cached_tokens, 4);
    }

    #[test]
    fn garbage_and_failed_responses_are_classified() {
        let no_output = parse_response(&ok(json!({"object": "response"}))).unwrap_err();
        assert_eq!(no_output.class, ErrorClass::BadResponse);
        let failed = parse_response(&ok(json!({"status": "failed",
            "error": {"code": "rate_limit_exceeded", "message": "slow"}})))
        .unwrap_err();
        assert_eq!(failed.class, ErrorClass::RateLimited);
        let quota = HttpResponse {
            status: 429,
            retry_after: None,
            body: json!({"error": {"code": "insufficient_quota", "message": "pay"}}).to_string(),
        };
        assert_eq!(parse_response(&quota).unwrap_err().class, ErrorClass::Quota);
    }
}
