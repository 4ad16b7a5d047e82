//! One model call over HTTP: send, read a bounded body, classify, retry.

use std::io::Read;
use std::time::{Duration, Instant};

use super::retry::{Jitter, RetryPolicy};
use super::wire::{HttpRequest, HttpResponse, ParseFn};
use crate::vocab::{CallOutcome, ErrorClass, ModelError};

/// How a call is made; fixed per model.
#[derive(Clone, Debug, PartialEq)]
pub struct CallSettings {
    /// Deadline for one attempt, connection to last byte.
    pub timeout: Duration,
    /// Larger bodies are refused as [`ErrorClass::BadResponse`].
    pub max_body_bytes: usize,
    pub retry: RetryPolicy,
}

/// A keep-alive HTTP client shared by all helper threads of a worker.
pub fn new_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .max_idle_connections_per_host(64)
        .user_agent(concat!("agent_loop/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `request` once.
pub fn send(
    agent: &ureq::Agent,
    request: &HttpRequest,
    settings: &CallSettings,
) -> Result<HttpResponse, ModelError> {
    let mut call = agent.post(&request.url).timeout(settings.timeout);
    for (name, value) in &request.headers {
        call = call.set(name, value);
    }
    let response = match call.send_string(&request.body) {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(t)) => return Err(transport_error(&t.to_string())),
    };
    let status = response.status();
    let retry_after = response.header("retry-after").map(str::to_owned);
    let mut body = Vec::new();
    let limit = settings.max_body_bytes as u64;
    response
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| transport_error(&format!("response body cut short: {e}")))?;
    if body.len() as u64 > limit {
        return Err(ModelError {
            status: Some(status),
            ..ModelError::new(
                ErrorClass::BadResponse,
                format!("response body larger than {limit} bytes"),
            )
        });
    }
    Ok(HttpResponse {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn transport_error(message: &str) -> ModelError {
    let lower = message.to_ascii_lowercase();
    let class = if lower.contains("timed out") || lower.contains("timeout") {
        ErrorClass::Timeout
    } else {
        ErrorClass::Transport
    };
    ModelError::new(class, message.to_owned())
}

/// Sends with retries: each failure is classified, and retried after the policy's delay while
/// the policy allows. `send` and `sleep` are parameters so the schedule tests without sockets.
pub fn call_with_retries(
    mut send: impl FnMut() -> Result<HttpResponse, ModelError>,
    parse: ParseFn,
    policy: &RetryPolicy,
    jitter: &mut Jitter,
    mut sleep: impl FnMut(Duration),
) -> CallOutcome {
    let started = Instant::now();
    let mut failed_attempts = Vec::new();
    let mut retry = 0;
    loop {
        let result = send().and_then(|response| parse(&response));
        let error = match result {
            Ok(reply) => {
                return CallOutcome {
                    result: Ok(reply),
                    failed_attempts,
                    latency: started.elapsed(),
                }
            }
            Err(error) => error,
        };
        match policy.next_delay(retry, &error, jitter.next_unit()) {
            Some(delay) => {
                failed_attempts.push(error);
                sleep(delay);
                retry += 1;
            }
            None => {
                return CallOutcome {
                    result: Err(error),
                    failed_attempts,
                    latency: started.elapsed(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::openai_chat::parse_response;
    use std::io::Write;
    use std::net::TcpListener;

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            retry_after: (status == 429).then(|| "0.01".to_owned()),
            body: body.to_owned(),
        }
    }

    const OK: &str = r#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#;

    #[test]
    fn retries_transient_errors_then_succeeds() {
        let mut script = vec![answer(429, "{}"), answer(503, "{}"), answer(200, OK)].into_iter();
        let mut slept = Vec::new();
        let out = call_with_retries(
            || Ok(script.next().unwrap()),
            parse_response,
            &RetryPolicy::default(),
            &mut Jitter::seeded(7),
            |d| slept.push(d),
        );
        assert_eq!(out.result.unwrap().text.as_deref(), Some("hi"));
        assert_eq!(out.failed_attempts.len(), 2);
        assert_eq!(slept[0], Duration::from_millis(10), "Retry-After honoured");
    }

    #[test]
    fn gives_up_after_max_retries_and_never_retries_permanent_errors() {
        let policy = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let out = call_with_retries(
            || {
                calls += 1;
                Err(ModelError::new(ErrorClass::Transport, "refused"))
            },
            parse_response,
            &policy,
            &mut Jitter::seeded(1),
            |_| {},
        );
        assert_eq!((calls, out.failed_attempts.len()), (3, 2));
        assert_eq!(out.result.unwrap_err().class, ErrorClass::Transport);

        let mut calls = 0;
        let out = call_with_retries(
            || {
                calls += 1;
                Ok(answer(401, r#"{"error":{"message":"bad key"}}"#))
            },
            parse_response,
            &policy,
            &mut Jitter::seeded(1),
            |_| {},
        );
        assert_eq!(calls, 1);
        assert_eq!(out.result.unwrap_err().message, "bad key");
    }

    /// Serves `raw` once on a loopback port; returns the base URL.
    fn serve_once(raw: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(raw.as_bytes());
        });
        format!("http://{addr}")
    }

    fn settings(max_body_bytes: usize) -> CallSettings {
        CallSettings {
            timeout: Duration::from_secs(5),
            max_body_bytes,
            retry: RetryPolicy::default(),
        }
    }

    fn request(url: String) -> HttpRequest {
        HttpRequest {
            url,
            headers: vec![],
            body: "{}".into(),
        }
    }

    #[test]
    fn real_socket_status_header_and_body() {
        let url = serve_once(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        );
        let resp = send(&new_agent(), &request(url), &settings(1024)).unwrap();
        assert_eq!((resp.status, resp.retry_after.as_deref()), (429, Some("3")));
    }

    #[test]
    fn real_socket_body_cut_short_and_oversized_body() {
        let url =
            serve_once("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"cho");
        let err = send(&new_agent(), &request(url), &settings(1024)).unwrap_err();
        assert_eq!(err.class, ErrorClass::Transport, "{err}");

        let url = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n01234567890123456789");
        let err = send(&new_agent(), &request(url), &settings(10)).unwrap_err();
        assert_eq!(err.class, ErrorClass::BadResponse, "{err}");
    }

    #[test]
    fn real_socket_connection_refused_is_transport() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = send(
            &new_agent(),
            &request(format!("http://127.0.0.1:{port}")),
            &settings(10),
        )
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Transport, "{err}");
    }
}
