//! The benchmark's model server: OpenAI Chat Completions (`POST .../chat/completions`) on
//! loopback, for the two models the benchmark uses, answering like pg_test/model_server.py:
//!
//! - `echo` answers "echo: <goal>";
//! - `scripted` reads the JSON array after "SCRIPT:" in the goal (the first user message) and
//!   answers turn k (the request holding k assistant messages) with entry k (the last entry
//!   repeats): `{"calls": [{"name", "arguments"}]}` or `{"answer": text}`.
//!
//! Why a second server: the benchmark's model shares the machine's two cores with PostgreSQL,
//! while a real model runs elsewhere. The Python test server spends ~150 us of CPU per request;
//! this one a tenth of that, so the figures are less about the test double. The end-to-end tests
//! keep the Python server: every wire format, fault and template is there.
//!
//! Usage: bench_model --port-file FILE [--latency-ms N] [--request-log FILE]

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

struct Config {
    latency: Duration,
    request_log: Option<Mutex<std::fs::File>>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let config = Arc::new(Config {
        latency: Duration::from_millis(arg("--latency-ms").map_or(0, |v| v.parse().unwrap())),
        request_log: arg("--request-log").map(|path| {
            Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            )
        }),
    });
    // A connection per call in flight: ten thousand of them pass the usual soft limit.
    let mut files = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or fill the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut files) == 0 {
            files.rlim_cur = files.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &files);
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    // A thousand tasks in flight open their connections at once; past the listen backlog std
    // sets (128), SYNs are dropped and retried a second later. Linux takes a second listen()
    // as a new backlog.
    unsafe { libc::listen(listener.as_raw_fd(), 1024) };
    let port = listener.local_addr().unwrap().port().to_string();
    match arg("--port-file") {
        Some(file) => {
            std::fs::write(format!("{file}.tmp"), port).unwrap();
            std::fs::rename(format!("{file}.tmp"), file).unwrap();
        }
        None => println!("{port}"),
    }
    for stream in listener.incoming().flatten() {
        let config = Arc::clone(&config);
        std::thread::spawn(move || {
            let _ = serve(stream, &config);
        });
    }
}

/// Answers the requests of one kept-alive connection until the client closes it.
fn serve(stream: TcpStream, config: &Config) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let post = line.starts_with("POST ") && line.contains("/chat/completions ");
        let (mut length, mut close) = (0usize, false);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.trim().eq_ignore_ascii_case("close");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (status, answer) = match post {
            true => answer(&body, config),
            false => (404, error("only POST .../chat/completions is served here")),
        };
        let payload = answer.to_string();
        let reason = if status == 200 { "OK" } else { "Error" };
        // One write, so one segment: formatting straight into the socket wrote piece by piece.
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        writer.write_all(response.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

fn error(message: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "code": null}})
}

/// The answer to one request body: (HTTP status, JSON).
fn answer(body: &[u8], config: &Config) -> (u16, Value) {
    let arrived = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return (400, error("request body is not JSON"));
    };
    let model = request["model"].as_str().unwrap_or_default();
    let messages = request["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let role = |m: &Value, r: &str| m["role"].as_str() == Some(r);
    let goal = messages
        .iter()
        .find(|m| role(m, "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let turn = messages.iter().filter(|m| role(m, "assistant")).count();
    if !config.latency.is_zero() {
        std::thread::sleep(config.latency);
    }
    if let (0, Some(log)) = (turn, &config.request_log) {
        let mut log = log.lock().unwrap();
        let _ = writeln!(
            log,
            "{}.{:06} {goal}",
            arrived.as_secs(),
            arrived.subsec_micros()
        );
    }
    let (content, calls) = match model {
        "echo" => (Some(format!("echo: {goal}")), vec![]),
        "scripted" => match script_entry(goal, turn) {
            Ok(entry) => entry,
            Err(problem) => return (400, error(&problem)),
        },
        _ => return (404, error(&format!("The model `{model}` does not exist"))),
    };
    let tool_calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, arguments))| {
            json!({"id": format!("call_{turn}_{i}"), "type": "function",
                   "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let prompt = body.len() / 4;
    let completion = message.to_string().len() / 4;
    (
        200,
        json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "model": model,
            "created": arrived.as_secs(),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" }}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        }),
    )
}

/// A tool call: (name, arguments as a JSON string).
type Call = (String, String);

/// The scripted answer for `turn`: its text, or its tool calls.
fn script_entry(goal: &str, turn: usize) -> Result<(Option<String>, Vec<Call>), String> {
    let script = goal
        .split_once("SCRIPT:")
        .ok_or("scripted model: the goal has no SCRIPT: marker")?
        .1;
    let script: Vec<Value> = serde_json::from_str(script)
        .map_err(|e| format!("scripted model: bad script JSON: {e}"))?;
    let entry = script
        .get(turn.min(script.len().saturating_sub(1)))
        .ok_or("scripted model: the script must be a non-empty JSON array")?;
    if let Some(answer) = entry["answer"].as_str() {
        return Ok((Some(answer.to_owned()), vec![]));
    }
    let calls = entry["calls"]
        .as_array()
        .ok_or("scripted model: this server knows \"answer\" and \"calls\" entries only")?
        .iter()
        .map(|c| {
            let arguments = match &c["arguments"] {
                Value::String(raw) => raw.clone(),
                Value::Null => "{}".to_owned(),
                other => other.to_string(),
            };
            (c["name"].as_str().unwrap_or_default().to_owned(), arguments)
        })
        .collect();
    Ok((entry["content"].as_str().map(str::to_owned), calls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_loop_core::model::{openai_chat, HttpResponse};

    const SCRIPT: &str =
        r#"SCRIPT: [{"calls": [{"name": "noop", "arguments": {"x": 1}}]}, {"answer": "done"}]"#;

    fn ask(model: &str, goal: &str, assistant_turns: usize) -> (u16, Value) {
        let mut messages = vec![json!({"role": "user", "content": goal})];
        for _ in 0..assistant_turns {
            messages.push(json!({"role": "assistant", "content": "..."}));
        }
        let body = json!({"model": model, "messages": messages}).to_string();
        let config = Config {
            latency: Duration::ZERO,
            request_log: None,
        };
        answer(body.as_bytes(), &config)
    }

    /// What agent_loop's worker reads from the answer.
    fn parsed(answer: (u16, Value)) -> agent_loop_core::vocab::ModelReply {
        let response = HttpResponse {
            status: answer.0,
            retry_after: None,
            body: answer.1.to_string(),
        };
        openai_chat::parse_response(&response).expect("the worker accepts the answer")
    }

    #[test]
    fn echo_answers_with_the_goal() {
        let reply = parsed(ask("echo", "count the orders", 0));
        assert_eq!(reply.text.as_deref(), Some("echo: count the orders"));
        assert!(reply.tool_calls.is_empty());
    }

    #[test]
    fn scripted_answers_turn_by_turn_and_repeats_its_last_entry() {
        let first = parsed(ask("scripted", SCRIPT, 0));
        assert_eq!(first.tool_calls.len(), 1);
        assert_eq!(first.tool_calls[0].name, "noop");
        assert_eq!(first.tool_calls[0].call_id, "call_0_0");
        assert_eq!(first.tool_calls[0].arguments, r#"{"x":1}"#);
        for turn in [1, 5] {
            let later = parsed(ask("scripted", SCRIPT, turn));
            assert_eq!(later.text.as_deref(), Some("done"));
            assert!(later.tool_calls.is_empty());
        }
    }

    #[test]
    fn bad_requests_get_errors() {
        assert_eq!(ask("scripted", "no script here", 0).0, 400);
        assert_eq!(ask("scripted", "SCRIPT: [", 0).0, 400);
        assert_eq!(ask("gpt-nothing", "hello", 0).0, 404);
    }
}
