//! What a provider sends back is untrusted: before a reply or an error reaches the step log,
//! a task's row or a log line, the credentials of the request are cut out of it (some proxies
//! echo the key in a 401 message) and NUL characters, which jsonb and text columns refuse, are
//! replaced.

use super::wire::HttpRequest;
use crate::vocab::{CallOutcome, ModelError, ModelReply};

/// What stands where a credential was.
pub const REDACTED: &str = "[redacted]";

/// Shorter values are not treated as secrets: replacing them would mangle ordinary text.
const MIN_SECRET_LEN: usize = 8;

/// The credentials a request carries in its headers: the value of each credential header, and
/// the token after `Bearer `.
pub fn secrets_of(request: &HttpRequest) -> Vec<String> {
    let mut secrets = Vec::new();
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "authorization" | "x-api-key" | "api-key" | "proxy-authorization"
        ) {
            continue;
        }
        let value = value.trim();
        let token = value
            .split_once(' ')
            .map(|(_, token)| token.trim())
            .unwrap_or(value);
        if token.len() < MIN_SECRET_LEN {
            continue;
        }
        for secret in [value, token] {
            if !secrets.iter().any(|s| s == secret) {
                secrets.push(secret.to_owned());
            }
        }
    }
    // Longest first, so a value is never left half replaced by a shorter one inside it.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// `text` without NUL characters (U+FFFD instead) and without any of `secrets`.
pub fn clean(text: &str, secrets: &[String]) -> String {
    let mut out = text.replace('\0', "\u{FFFD}");
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

fn clean_in_place(text: &mut String, secrets: &[String]) {
    if text.contains('\0') || secrets.iter().any(|s| text.contains(s.as_str())) {
        *text = clean(text, secrets);
    }
}

fn clean_json(value: &mut serde_json::Value, secrets: &[String]) {
    match value {
        serde_json::Value::String(text) => clean_in_place(text, secrets),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| clean_json(v, secrets)),
        serde_json::Value::Object(map) => {
            let keys_dirty = map.keys().any(|k| k.contains('\0'));
            if keys_dirty {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    clean_json(&mut v, secrets);
                    map.insert(clean(&key, secrets), v);
                }
            } else {
                map.values_mut().for_each(|v| clean_json(v, secrets));
            }
        }
        _ => {}
    }
}

fn clean_error(error: &mut ModelError, secrets: &[String]) {
    clean_in_place(&mut error.message, secrets);
}

fn clean_reply(reply: &mut ModelReply, secrets: &[String]) {
    if let Some(text) = reply.text.as_mut() {
        clean_in_place(text, secrets);
    }
    for call in &mut reply.tool_calls {
        clean_in_place(&mut call.call_id, secrets);
        clean_in_place(&mut call.name, secrets);
        clean_in_place(&mut call.arguments, secrets);
    }
    for reasoning in &mut reply.reasoning {
        clean_json(&mut reasoning.item, secrets);
    }
    if let Some(reason) = reply.finish_reason.as_mut() {
        clean_in_place(reason, secrets);
    }
}

/// Cleans everything of a call's outcome that is stored or logged.
pub fn clean_outcome(outcome: &mut CallOutcome, secrets: &[String]) {
    match &mut outcome.result {
        Ok(reply) => clean_reply(reply, secrets),
        Err(error) => clean_error(error, secrets),
    }
    for failed in &mut outcome.failed_attempts {
        clean_error(failed, secrets);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::vocab::{ErrorClass, ToolCallRequest};

    fn request(headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            url: "http://x".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: String::new(),
        }
    }

    #[test]
    fn bearer_and_api_key_headers_are_secrets() {
        let r = request(&[
            ("Authorization", "Bearer sk-live-123456789"),
            ("x-api-key", "anthropic-key-abcdef"),
            ("content-type", "application/json-long-value"),
        ]);
        let secrets = secrets_of(&r);
        assert!(secrets.contains(&"sk-live-123456789".to_owned()));
        assert!(secrets.contains(&"Bearer sk-live-123456789".to_owned()));
        assert!(secrets.contains(&"anthropic-key-abcdef".to_owned()));
        assert!(!secrets.iter().any(|s| s.contains("json")));
    }

    #[test]
    fn short_values_are_not_secrets() {
        assert!(secrets_of(&request(&[("authorization", "Bearer abc")])).is_empty());
    }

    #[test]
    fn an_echoed_key_is_redacted_in_errors_and_replies() {
        let secrets = secrets_of(&request(&[("authorization", "Bearer sk-live-123456789")]));
        let mut failed = CallOutcome {
            result: Err(ModelError::new(
                ErrorClass::Auth,
                "invalid key sk-live-123456789 for Bearer sk-live-123456789",
            )),
            failed_attempts: vec![ModelError::new(ErrorClass::Server, "key=sk-live-123456789")],
            latency: Duration::ZERO,
        };
        clean_outcome(&mut failed, &secrets);
        let Err(error) = &failed.result else { panic!() };
        assert_eq!(error.message, "invalid key [redacted] for [redacted]");
        assert_eq!(failed.failed_attempts[0].message, "key=[redacted]");

        let mut answered = CallOutcome {
            result: Ok(ModelReply {
                text: Some("your key is sk-live-123456789".into()),
                ..Default::default()
            }),
            failed_attempts: Vec::new(),
            latency: Duration::ZERO,
        };
        clean_outcome(&mut answered, &secrets);
        let Ok(reply) = &answered.result else {
            panic!()
        };
        assert_eq!(reply.text.as_deref(), Some("your key is [redacted]"));
    }

    #[test]
    fn nul_characters_are_replaced_everywhere() {
        let mut outcome = CallOutcome {
            result: Ok(ModelReply {
                text: Some("a\0b".into()),
                tool_calls: vec![ToolCallRequest {
                    call_id: "c\0".into(),
                    name: "sql\0query".into(),
                    arguments: "{\"q\": \"\0\"}".into(),
                }],
                reasoning: vec![crate::vocab::Reasoning {
                    provider: "anthropic".into(),
                    item: serde_json::json!({"k\u{0}": ["x\u{0}"]}),
                }],
                ..Default::default()
            }),
            failed_attempts: Vec::new(),
            latency: Duration::ZERO,
        };
        clean_outcome(&mut outcome, &[]);
        let Ok(reply) = &outcome.result else { panic!() };
        let all = format!("{reply:?}");
        assert!(!all.contains('\0'), "{all}");
        assert_eq!(reply.tool_calls[0].name, "sql\u{FFFD}query");
        assert_eq!(
            reply.reasoning[0].item,
            serde_json::json!({"k\u{FFFD}": ["x\u{FFFD}"]})
        );
    }
}
