//! What the wire formats share: the endpoint a request goes to, the raw HTTP request and
//! answer, the shape of a provider (how it writes a request and reads an answer), and the
//! helpers every provider reads its answer with.

use crate::vocab::{truncate, ErrorClass, ModelError, ModelReply, Prompt, ToolChoice};

use super::retry;

/// A wire format: how one provider writes a prompt as a request and reads the answer. Every
/// provider reads the same step log, so a model can switch provider between two steps of a
/// task.
#[derive(Clone, Copy, Debug)]
pub struct Provider {
    /// The `models.provider` value.
    pub name: &'static str,
    pub build_request: fn(&Endpoint<'_>, &Prompt) -> HttpRequest,
    pub parse_response: ParseFn,
}

/// Parses a provider's response into a reply or a classified error.
pub type ParseFn = fn(&HttpResponse) -> Result<ModelReply, ModelError>;

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

/// The request body: the wire format's defaults, the model's `options` over them, and the
/// fields the wire format owns over both.
pub fn request_body(
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
pub fn bad_response(response: &HttpResponse, why: String) -> ModelError {
    ModelError {
        status: Some(response.status),
        ..ModelError::new(ErrorClass::BadResponse, why)
    }
}

/// The body of a 2xx answer as JSON, and the array under `key` in it (`choices`, `output`,
/// `content`): the part every provider's reply is read from.
pub fn json_body(response: &HttpResponse) -> Result<serde_json::Value, ModelError> {
    serde_json::from_str(&response.body).map_err(|e| {
        let why = format!("response is not JSON ({e}): {}", snippet(&response.body));
        bad_response(response, why)
    })
}

pub fn array_in<'a>(
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

/// `tool_choice` as both OpenAI formats spell it; `None` sends none (the model chooses).
pub fn openai_tool_choice(choice: ToolChoice) -> Option<serde_json::Value> {
    match choice {
        ToolChoice::Auto => None,
        ToolChoice::Required => Some(serde_json::json!("required")),
        ToolChoice::None => Some(serde_json::json!("none")),
    }
}

/// How llama.cpp's server says that its model's output did not match the tool-call format it
/// parses (HTTP 500, in every wire format it speaks).
pub const UNPARSABLE_OUTPUT: &str = "model produced output that does not match the expected";

/// A non-2xx answer as an error: `class`, or else what the status alone says (429 and 529
/// rate limiting, 401/403 auth, a 500 for unparsable output, 408/409/5xx server trouble, any
/// other a bad request), with the server's Retry-After.
pub fn http_error(
    response: &HttpResponse,
    class: Option<ErrorClass>,
    message: String,
) -> ModelError {
    let class = class.unwrap_or(match response.status {
        429 | 529 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        500 if message.contains(UNPARSABLE_OUTPUT) => ErrorClass::UnparsableOutput,
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
pub fn snippet(body: &str) -> String {
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
