//! Talking to models: provider-neutral types, the wire formats, the retry policy and the pool of
//! helper threads that make the HTTP calls. Nothing here calls PostgreSQL.

pub mod anthropic;
pub mod http;
pub mod openai_chat;
pub mod openai_error;
pub mod openai_responses;
pub mod pool;
pub mod retry;
pub mod sanitize;

use std::fmt;
use std::time::Duration;

use crate::context::Prompt;

/// Token usage of one model call, as the provider reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub input_tokens: i64,
    /// Part of `input_tokens` served from the provider's prompt cache.
    pub cached_tokens: i64,
    pub output_tokens: i64,
    /// Part of `output_tokens` spent on hidden reasoning.
    pub reasoning_tokens: i64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.cached_tokens += other.cached_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }
}

/// A tool call as the model asked for it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolCallRequest {
    pub call_id: String,
    pub name: String,
    /// The arguments exactly as the model wrote them: JSON text, possibly malformed.
    pub arguments: String,
}

/// Reasoning a model returned (an OpenAI Responses reasoning item, an Anthropic thinking
/// block), kept verbatim: the provider that wrote it wants it back in later requests of the
/// task, and no other provider can read it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reasoning {
    /// [`Provider::name`] of the provider that wrote it.
    pub provider: String,
    pub item: serde_json::Value,
}

/// A model's answer to one request.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelReply {
    pub reasoning: Vec<Reasoning>,
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCallRequest>,
    pub usage: Usage,
    pub finish_reason: Option<String>,
}

/// What went wrong with a model request. The class decides whether it is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorClass {
    /// Connection refused or reset, DNS failure, body cut short.
    Transport,
    /// No complete answer within the model's request timeout.
    Timeout,
    /// 429 (without a quota code) or 529.
    RateLimited,
    /// 408, 409 or 5xx.
    Server,
    /// 2xx whose body is not the provider's format: not JSON, wrong shape, too large.
    BadResponse,
    /// The prompt does not fit the model's context window.
    ContextLength,
    /// Quota or spending limit exhausted.
    Quota,
    /// 401 or 403.
    Auth,
    /// Any other 4xx: the request itself is wrong.
    BadRequest,
    /// The helper thread panicked.
    Internal,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transport => "transport",
            ErrorClass::Timeout => "timeout",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Server => "server_error",
            ErrorClass::BadResponse => "bad_response",
            ErrorClass::ContextLength => "context_length",
            ErrorClass::Quota => "quota",
            ErrorClass::Auth => "auth",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Internal => "internal",
        }
    }

    /// Whether the same request may succeed if sent again. Context-length, quota, auth and
    /// malformed-request errors never do, so they are never retried.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Transport
                | ErrorClass::Timeout
                | ErrorClass::RateLimited
                | ErrorClass::Server
                | ErrorClass::BadResponse
        )
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelError {
    pub class: ErrorClass,
    pub message: String,
    pub status: Option<u16>,
    /// The server's Retry-After, when it sent one.
    pub retry_after: Option<Duration>,
}

impl ModelError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ModelError {
            class,
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The wire protocol of a model endpoint. Every provider reads the same step log, so a model
/// can switch provider between two steps of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI Chat Completions, and every server compatible with it (Ollama, vLLM, llama.cpp,
    /// LM Studio).
    OpenAiChat,
    /// OpenAI Responses (`function_call` / `function_call_output` items, reasoning items).
    OpenAiResponses,
    /// Anthropic Messages (`tool_use` / `tool_result` blocks, thinking blocks).
    Anthropic,
}

/// Where and how to reach a model.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint<'a> {
    pub base_url: &'a str,
    pub model: &'a str,
    /// May be a credential: never log it.
    pub api_key: Option<&'a str>,
    /// Extra request body fields (e.g. `{"temperature": 0}`); they cannot replace the fields
    /// the wire format owns.
    pub options: &'a serde_json::Value,
}

impl Provider {
    pub const ALL: [Provider; 3] = [
        Provider::OpenAiChat,
        Provider::OpenAiResponses,
        Provider::Anthropic,
    ];

    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The `models.provider` value.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAiChat => "openai_chat",
            Provider::OpenAiResponses => "openai_responses",
            Provider::Anthropic => "anthropic",
        }
    }

    pub fn build_request(self, endpoint: &Endpoint<'_>, prompt: &Prompt) -> HttpRequest {
        match self {
            Provider::OpenAiChat => openai_chat::build_request(endpoint, prompt),
            Provider::OpenAiResponses => openai_responses::build_request(endpoint, prompt),
            Provider::Anthropic => anthropic::build_request(endpoint, prompt),
        }
    }

    pub fn parser(self) -> http::ParseFn {
        match self {
            Provider::OpenAiChat => openai_chat::parse_response,
            Provider::OpenAiResponses => openai_responses::parse_response,
            Provider::Anthropic => anthropic::parse_response,
        }
    }
}

/// The request body: the wire format's defaults, the model's `options` over them, and the
/// fields the wire format owns over both.
pub(crate) fn request_body(
    defaults: serde_json::Value,
    options: &serde_json::Value,
    owned: Vec<(&str, serde_json::Value)>,
) -> serde_json::Value {
    let mut body = match defaults {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    if let Some(extra) = options.as_object() {
        body.extend(extra.clone());
    }
    for (key, value) in owned {
        body.insert(key.to_owned(), value);
    }
    serde_json::Value::Object(body)
}

/// A 2xx answer whose body is not the provider's format.
pub(crate) fn bad_response(response: &HttpResponse, why: String) -> ModelError {
    ModelError {
        status: Some(response.status),
        ..ModelError::new(ErrorClass::BadResponse, why)
    }
}

/// The body of a 2xx answer as JSON, and the array under `key` in it (`choices`, `output`,
/// `content`): the part every provider's reply is read from.
pub(crate) fn json_body(response: &HttpResponse) -> Result<serde_json::Value, ModelError> {
    serde_json::from_str(&response.body).map_err(|e| {
        let why = format!("response is not JSON ({e}): {}", snippet(&response.body));
        bad_response(response, why)
    })
}

pub(crate) fn array_in<'a>(
    body: &'a serde_json::Value,
    key: &str,
    response: &HttpResponse,
) -> Result<&'a Vec<serde_json::Value>, ModelError> {
    body.get(key)
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| {
            let why = format!("response has no {key}: {}", snippet(&response.body));
            bad_response(response, why)
        })
}

/// A non-2xx answer as an error: `class`, or else what the status alone says (429 and 529
/// rate limiting, 401/403 auth, 408/409/5xx server trouble, any other a bad request), with the
/// server's Retry-After.
pub(crate) fn http_error(
    response: &HttpResponse,
    class: Option<ErrorClass>,
    message: String,
) -> ModelError {
    let class = class.unwrap_or(match response.status {
        429 | 529 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        408 | 409 | 500..=599 => ErrorClass::Server,
        _ => ErrorClass::BadRequest,
    });
    ModelError {
        class,
        message,
        status: Some(response.status),
        retry_after: response
            .retry_after
            .as_deref()
            .and_then(retry::parse_retry_after),
    }
}

/// The first 200 bytes of a body, for error messages.
pub(crate) fn snippet(body: &str) -> String {
    truncate(body.trim(), 200)
}

/// One HTTP request, fully built, ready for a helper thread.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    pub url: String,
    /// Header pairs. May hold credentials: never log them.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The raw answer to an [`HttpRequest`].
#[derive(Clone, Debug, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

/// Shortens `text` to at most `max` bytes on a character boundary, saying so.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_classes_are_retried() {
        for class in [
            ErrorClass::ContextLength,
            ErrorClass::Quota,
            ErrorClass::Auth,
            ErrorClass::BadRequest,
            ErrorClass::Internal,
        ] {
            assert!(!class.retryable(), "{class:?}");
        }
        assert!(ErrorClass::RateLimited.retryable());
        assert!(ErrorClass::Transport.retryable());
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        let t = truncate("ééé", 3);
        assert!(t.starts_with('é') && t.contains("more bytes"), "{t}");
    }
}
