//! The words every layer speaks: a prompt and its messages, a tool as the model sees it, the
//! model's reply (text, tool calls, reasoning, usage) or its classified error, and the text
//! helpers they share. This module imports nothing of the crate, so the wire formats, the
//! log, the loop and the worker can all depend on it without depending on each other.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

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
    /// The server could not parse its own model's output (llama.cpp's server answers 500
    /// when a tool call does not match its format). Sent again unchanged, the same prompt
    /// gets the same output, so it is not retried as it is; see `guards::tool_choice`.
    UnparsableOutput,
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
            ErrorClass::UnparsableOutput => "unparsable_output",
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
        /// Reasoning the model returned with this turn, for the provider that wrote it.
        reasoning: Vec<Reasoning>,
        text: Option<String>,
        tool_calls: Vec<ToolCallRequest>,
    },
    ToolResult {
        call_id: String,
        output: String,
        is_error: bool,
    },
}

/// Whether the model may, must or must not call a tool in its next answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ToolChoice {
    /// The model decides (no `tool_choice` is sent).
    #[default]
    Auto,
    /// It must call one: the answer needs data it has not fetched yet.
    Required,
    /// It must answer in text: it has what it needs, or it is repeating itself.
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// Sent only when tools are offered.
    pub tool_choice: ToolChoice,
    /// JSON Schema the final answer must match, when the task asked for structured output.
    pub output_schema: Option<Value>,
    /// A bound on the answer's length, for the loop's own short requests (a summary); `None`
    /// leaves it to the model's options.
    pub max_output_tokens: Option<u32>,
}

impl Prompt {
    /// The schema to ask the provider to hold the answer to: none while a tool call is
    /// required, for the answer is not due yet (and llama.cpp's server, given both, obeys the
    /// schema and calls no tool).
    pub fn answer_schema(&self) -> Option<&Value> {
        self.output_schema
            .as_ref()
            .filter(|_| self.tools.is_empty() || self.tool_choice != ToolChoice::Required)
    }
}

/// What a call came to, with every attempt that failed on the way.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CallOutcome {
    pub result: Result<ModelReply, ModelError>,
    pub failed_attempts: Vec<ModelError>,
    /// Time from the first byte sent to the final answer, retries included.
    pub latency: Duration,
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

/// `text` on one line (runs of whitespace become one space), at most `max` bytes.
pub fn one_line(text: &str, max: usize) -> String {
    truncate(&text.split_whitespace().collect::<Vec<_>>().join(" "), max)
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
            ErrorClass::UnparsableOutput,
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

    #[test]
    fn one_line_flattens_whitespace_then_truncates() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert!(one_line("x y z", 3).starts_with("x y"));
    }
}
