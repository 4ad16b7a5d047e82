//! OpenAI's error body, `{"error": {"message", "type", "code"}}`, shared by Chat Completions and
//! Responses (and by most servers compatible with them).

use serde_json::Value;

use super::wire::{http_error, snippet, HttpResponse};
use crate::vocab::{ErrorClass, ModelError};

/// Classifies a non-2xx response.
pub fn classify(response: &HttpResponse) -> ModelError {
    let body: Option<Value> = serde_json::from_str(&response.body).ok();
    let error = body.as_ref().and_then(|b| b.get("error"));
    let field = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let code = field("code");
    let kind = field("type");
    let message = match field("message") {
        "" => snippet(&response.body),
        m => m.to_owned(),
    };
    let class = if code == "context_length_exceeded" || message.contains("maximum context length") {
        Some(ErrorClass::ContextLength)
    } else if code == "insufficient_quota" || kind == "insufficient_quota" {
        Some(ErrorClass::Quota)
    } else {
        None
    };
    http_error(response, class, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn resp(status: u16, body: Value, retry_after: Option<&str>) -> HttpResponse {
        HttpResponse {
            status,
            retry_after: retry_after.map(str::to_owned),
            body: body.to_string(),
        }
    }

    #[test]
    fn errors_are_classified_by_status_and_code() {
        let e = classify(&resp(
            429,
            json!({"error": {"message": "slow down"}}),
            Some("1"),
        ));
        assert_eq!(
            (e.class, e.retry_after),
            (ErrorClass::RateLimited, Some(Duration::from_secs(1)))
        );
        let quota = json!({"error": {"code": "insufficient_quota", "message": "pay"}});
        assert_eq!(classify(&resp(429, quota, None)).class, ErrorClass::Quota);
        let long = json!({"error": {"code": "context_length_exceeded", "message": "long"}});
        assert_eq!(
            classify(&resp(400, long, None)).class,
            ErrorClass::ContextLength
        );
        assert_eq!(
            classify(&resp(503, json!("x"), None)).class,
            ErrorClass::Server
        );
        assert_eq!(
            classify(&resp(529, json!({}), None)).class,
            ErrorClass::RateLimited
        );
        assert_eq!(
            classify(&resp(401, json!({}), None)).class,
            ErrorClass::Auth
        );
        assert_eq!(
            classify(&resp(404, json!({}), None)).class,
            ErrorClass::BadRequest
        );
    }
}
