//! The OpenAI Chat Completions wire format (`POST {base_url}/chat/completions`), spoken also by
//! Ollama, vLLM, llama.cpp and LM Studio.

use serde_json::{json, Value};

use super::openai_error;
use super::wire::{
    array_in, bad_response, json_body, openai_tool_choice, request_body, Endpoint, HttpRequest,
    HttpResponse, Provider,
};
use crate::vocab::{Message, ModelError, ModelReply, Prompt, ToolCallRequest, Usage};

/// This wire format, as the registry lists it.
pub const PROVIDER: Provider = Provider {
    name: "openai_chat",
    build_request,
    parse_response,
};

/// Builds the request. Reasoning from other providers is not sent: this format has no place
/// for it.
pub fn build_request(endpoint: &Endpoint<'_>, prompt: &Prompt) -> HttpRequest {
    let messages: Vec<Value> = prompt.messages.iter().map(message_json).collect();
    let mut owned = vec![
        ("model", json!(endpoint.model)),
        ("messages", Value::Array(messages)),
    ];
    if !prompt.tools.is_empty() {
        let tools: Vec<Value> = prompt
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        owned.push(("tools", Value::Array(tools)));
        owned.extend(openai_tool_choice(prompt.tool_choice).map(|c| ("tool_choice", c)));
    }
    // While a call is required the answer is not due, and a response format would stop some
    // servers (llama.cpp's) from calling tools at all.
    if let Some(schema) = prompt.answer_schema() {
        owned.push((
            "response_format",
            json!({"type": "json_schema",
                   "json_schema": {"name": "result", "schema": schema, "strict": false}}),
        ));
    }
    if let Some(max) = prompt.max_output_tokens {
        owned.push(("max_tokens", json!(max)));
    }
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(key) = endpoint.api_key {
        headers.push(("Authorization".to_owned(), format!("Bearer {key}")));
    }
    HttpRequest {
        url: format!(
            "{}/chat/completions",
            endpoint.base_url.trim_end_matches('/')
        ),
        headers,
        body: request_body(json!({}), endpoint.options, owned).to_string(),
    }
}

fn message_json(message: &Message) -> Value {
    match message {
        Message::System(text) => json!({"role": "system", "content": text}),
        Message::User(text) => json!({"role": "user", "content": text}),
        Message::Assistant {
            text, tool_calls, ..
        } => {
            let mut m = json!({"role": "assistant", "content": text});
            if !tool_calls.is_empty() {
                m["tool_calls"] = tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.call_id, "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments}})
                    })
                    .collect();
            }
            m
        }
        Message::ToolResult {
            call_id, output, ..
        } => {
            json!({"role": "tool", "tool_call_id": call_id, "content": output})
        }
    }
}

/// Reads a response: the reply on 2xx, otherwise an error classified for the retry policy.
pub fn parse_response(response: &HttpResponse) -> Result<ModelReply, ModelError> {
    if !(200..300).contains(&response.status) {
        return Err(openai_error::classify(response));
    }
    let bad = |why: &str| bad_response(response, why.to_owned());
    let body = json_body(response)?;
    let choice = array_in(&body, "choices", response)?
        .first()
        .ok_or_else(|| bad("response has an empty choices array"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad("choice has no message object"))?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut tool_calls = Vec::new();
    for (i, call) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let function = call
            .get("function")
            .ok_or_else(|| bad(&format!("tool call {i} has no function")))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&format!("tool call {i} has no function name")))?;
        // Some servers send arguments as an object instead of a JSON string.
        let arguments = match function.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "{}".to_owned(),
            Some(other) => other.to_string(),
        };
        let call_id = call
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("call_{i}"));
        tool_calls.push(ToolCallRequest {
            call_id,
            name: name.to_owned(),
            arguments,
        });
    }
    Ok(ModelReply {
        reasoning: Vec::new(),
        text,
        tool_calls,
        usage: parse_usage(body.get("usage")),
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn parse_usage(usage: Option<&Value>) -> Usage {
    let n = |path: &[&str]| -> i64 {
        let mut v = usage;
        for key in path {
            v = v.and_then(|x| x.get(*key));
        }
        v.and_then(Value::as_i64).unwrap_or(0)
    };
    Usage {
        input_tokens: n(&["prompt_tokens"]),
        cached_tokens: n(&["prompt_tokens_details", "cached_tokens"]),
        output_tokens: n(&["completion_tokens"]),
        reasoning_tokens: n(&["completion_tokens_details", "reasoning_tokens"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ErrorClass;
    use crate::vocab::{ToolChoice, ToolSpec};

    fn ok(body: Value) -> HttpResponse {
        HttpResponse {
            status: 200,
            retry_after: None,
            body: body.to_string(),
        }
    }

    #[test]
    fn request_carries_messages_tools_and_key() {
        let prompt = Prompt {
            messages: vec![
                Message::System("s".into()),
                Message::User("u".into()),
                Message::Assistant {
                    reasoning: vec![],
                    text: None,
                    tool_calls: vec![ToolCallRequest {
                        call_id: "c1".into(),
                        name: "f".into(),
                        arguments: "{\"a\":1}".into(),
                    }],
                },
                Message::ToolResult {
                    call_id: "c1".into(),
                    output: "2".into(),
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
            output_schema: Some(json!({"type": "object"})),
        };
        let options = json!({"temperature": 0, "model": "ignored"});
        let req = build_request(
            &Endpoint {
                base_url: "http://h/v1/",
                model: "m",
                api_key: Some("sk"),
                options: &options,
            },
            &prompt,
        );
        assert_eq!(req.url, "http://h/v1/chat/completions");
        assert!(req
            .headers
            .contains(&("Authorization".into(), "Bearer sk".into())));
        let body: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["model"], "m");
        assert_eq!(body["temperature"], 0);
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["tools"][0]["function"]["name"], "f");
        assert_eq!(body["tool_choice"], "required");
        assert!(
            body.get("response_format").is_none(),
            "no answer is due yet"
        );
        let answering = Prompt {
            tool_choice: ToolChoice::Auto,
            ..prompt.clone()
        };
        let endpoint = Endpoint {
            base_url: "http://h/v1/",
            model: "m",
            api_key: None,
            options: &options,
        };
        let body: Value = serde_json::from_str(&build_request(&endpoint, &answering).body).unwrap();
        assert!(body.get("tool_choice").is_none());
        assert_eq!(body["response_format"]["type"], "json_schema");
    }

    #[test]
    fn reply_with_parallel_tool_calls_and_usage() {
        let reply = parse_response(&ok(json!({
            "choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "x", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "y", "arguments": {"k": 1}}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                      "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 2}}
        })))
        .unwrap();
        assert_eq!(reply.text, None);
        assert_eq!(reply.tool_calls.len(), 2);
        assert_eq!(reply.tool_calls[1].arguments, "{\"k\":1}");
        assert_eq!(
            reply.usage,
            Usage {
                input_tokens: 10,
                cached_tokens: 4,
                output_tokens: 5,
                reasoning_tokens: 2
            }
        );
    }

    #[test]
    fn garbage_is_a_bad_response_not_a_panic() {
        let cut = HttpResponse {
            status: 200,
            retry_after: None,
            body: "{\"choices\": [".into(),
        };
        assert_eq!(
            parse_response(&cut).unwrap_err().class,
            ErrorClass::BadResponse
        );
        let shape = ok(json!({"id": "x", "object": "chat.completion"}));
        assert_eq!(
            parse_response(&shape).unwrap_err().class,
            ErrorClass::BadResponse
        );
    }
}
