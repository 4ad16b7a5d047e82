#!/usr/bin/env python3
"""A scripted model server speaking the OpenAI Chat Completions wire format over HTTP.

It stands in for a real model in agent_loop's end-to-end tests, demo and benchmark: a separate
process on loopback, so requests travel the same HTTP path as in production.

Which answer it gives is decided by the request's "model" field:

  scripted   The goal (first user message) carries a script after the marker "SCRIPT:", a JSON
             array with one entry per model turn; turn k answers the request that already holds
             k assistant messages (the last entry repeats). An entry may hold
               "content": text,      "calls": [{"name": ..., "arguments": {...} or "raw"}],
               "answer": final text (placeholders {{last_tool_result}}, {{tool_results}},
                         {{lessons}}, {{tools}}),
               "fault": "429" | "500" | "503" | "hang" | "malformed" | "wrong_shape" | "cut" |
                        "huge" | "quota" | "context_length", with "times" (how many identical
                        requests get the fault before the entry answers normally; default:
                        always) and "retry_after",
               "delay_ms": latency before answering.
  demo       Looks up the best sellers with sql_query, then reports them.
  echo       Answers "echo: <goal>" at once (benchmarks).

Requests are validated like a real server would: malformed JSON, a tool message without the
assistant tool call it answers, or a missing API key (paths under /secured/) get 400 or 401.
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULT_COUNTS = {}
FAULT_LOCK = threading.Lock()
LOG_LOCK = threading.Lock()
STATS = {"requests": 0}


def goal_of(messages):
    return next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")


def script_of(messages):
    goal = goal_of(messages)
    marker = goal.find("SCRIPT:")
    if marker < 0:
        return None, "scripted model: the goal has no SCRIPT: marker"
    try:
        script = json.loads(goal[marker + len("SCRIPT:"):])
    except ValueError as e:
        return None, f"scripted model: bad script JSON: {e}"
    if not isinstance(script, list) or not script:
        return None, "scripted model: the script must be a non-empty JSON array"
    return script, None


def tool_results(messages):
    return [m.get("content") or "" for m in messages if m.get("role") == "tool"]


def lessons(messages):
    system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
    return " | ".join(line[2:] for line in system.splitlines() if line.startswith("- ")) or "none"


def fill(template, messages, tools):
    results = tool_results(messages)
    return (template.replace("{{last_tool_result}}", results[-1] if results else "none")
                    .replace("{{tool_results}}", " ; ".join(results) or "none")
                    .replace("{{lessons}}", lessons(messages))
                    .replace("{{tools}}", ",".join(sorted(tools)) or "none"))


def validate(body):
    """Returns an error message for a request a real server would refuse."""
    if not isinstance(body.get("model"), str):
        return "'model' is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    open_calls = set()
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            return f"messages[{i}]: invalid role {role!r}"
        if role == "assistant":
            for call in m.get("tool_calls") or []:
                args = call.get("function", {}).get("arguments")
                if call.get("type") != "function" or not isinstance(args, str):
                    return f"messages[{i}]: tool_calls need type 'function' and string arguments"
                open_calls.add(call.get("id"))
        if role == "tool":
            if m.get("tool_call_id") not in open_calls:
                return f"messages[{i}]: tool message answers no preceding tool call"
    for t in body.get("tools") or []:
        if t.get("type") != "function" or not t.get("function", {}).get("name"):
            return "each tool needs type 'function' and a function name"
    return None


def completion(model, content, calls, messages):
    prompt_chars = sum(len(json.dumps(m)) for m in messages)
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": prompt_chars // 4,
                  "completion_tokens": len(json.dumps(message)) // 4,
                  "total_tokens": prompt_chars // 4 + len(json.dumps(message)) // 4,
                  "prompt_tokens_details": {"cached_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agent-loop-test-model/1"

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle and delayed ACKs add
        # ~40 ms to every answer on a kept-alive connection.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("model_server: " + (fmt % args) + "\n")

    def send(self, status, payload, headers=None):
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def error(self, status, message, code=None, headers=None):
        self.send(status, {"error": {"message": message, "type": "invalid_request_error",
                                     "code": code}}, headers)

    def do_GET(self):
        if self.path == "/stats":
            return self.send(200, STATS)
        self.error(404, "not found")

    def do_POST(self):
        arrived = time.time()
        STATS["requests"] += 1
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.endswith("/chat/completions"):
            return self.error(404, f"unknown path {self.path}")
        if self.path.startswith("/secured/"):
            if self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
                return self.error(401, "Incorrect API key provided", "invalid_api_key")
        try:
            body = json.loads(raw)
        except ValueError as e:
            return self.error(400, f"request body is not JSON: {e}")
        problem = validate(body)
        if problem:
            return self.error(400, problem)
        if self.server.latency_ms:
            time.sleep(self.server.latency_ms / 1000)
        messages = body["messages"]
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        if turn == 0 and self.server.request_log:
            with LOG_LOCK:
                self.server.request_log.write(f"{arrived:.6f} {goal_of(messages)}\n")
                self.server.request_log.flush()
        model = body["model"]
        if model == "echo":
            return self.send(200, completion(model, "echo: " + goal_of(messages), None, messages))
        if model == "demo":
            return self.demo(messages, turn)
        if model != "scripted":
            return self.error(404, f"The model `{model}` does not exist", "model_not_found")
        script, problem = script_of(messages)
        if problem:
            return self.error(400, problem)
        entry = script[min(turn, len(script) - 1)]
        if entry.get("delay_ms"):
            time.sleep(entry["delay_ms"] / 1000)
        if entry.get("fault") and self.fault(entry, raw):
            return
        calls = [{"id": f"call_{turn}_{i}", "type": "function",
                  "function": {"name": c["name"],
                               "arguments": c["arguments"] if isinstance(c.get("arguments"), str)
                               else json.dumps(c.get("arguments", {}))}}
                 for i, c in enumerate(entry.get("calls") or [])]
        content = entry.get("content")
        if "answer" in entry:
            content = fill(entry["answer"], messages, tools)
        self.send(200, completion(model, content, calls or None, messages))

    def fault(self, entry, raw):
        """Sends the entry's fault unless its "times" are used up; True if it did."""
        key = hashlib.sha1(raw).hexdigest()
        with FAULT_LOCK:
            seen = FAULT_COUNTS.get(key, 0)
            FAULT_COUNTS[key] = seen + 1
        if "times" in entry and seen >= entry["times"]:
            return False
        fault = entry["fault"]
        retry_after = {"Retry-After": str(entry["retry_after"])} if "retry_after" in entry else None
        if fault == "429":
            self.error(429, "Rate limit reached", "rate_limit_exceeded", retry_after)
        elif fault in ("500", "502", "503"):
            self.error(int(fault), "The server had an error", None, retry_after)
        elif fault == "quota":
            self.error(429, "You exceeded your current quota", "insufficient_quota")
        elif fault == "context_length":
            self.error(400, "This model's maximum context length is 8 tokens", "context_length_exceeded")
        elif fault == "hang":
            time.sleep(entry.get("hang_s", 30))
            self.send(200, completion("scripted", "too late", None, []))
        elif fault == "malformed":
            self.send(200, b"this is not json {")
        elif fault == "wrong_shape":
            self.send(200, {"id": "x", "object": "chat.completion", "result": "no choices here"})
        elif fault == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices": [{"mess')
            self.wfile.flush()
            self.close_connection = True
        elif fault == "huge":
            self.send(200, b'{"pad": "' + b"x" * entry.get("bytes", 20_000_000) + b'"}')
        else:
            self.error(400, f"unknown fault {fault!r}")
        return True

    def demo(self, messages, turn):
        if turn == 0:
            query = ("SELECT product, sum(quantity) AS units, sum(quantity * price) AS revenue "
                     "FROM demo.sales GROUP BY product ORDER BY units DESC LIMIT 3")
            call = {"id": "call_demo_1", "type": "function",
                    "function": {"name": "sql_query", "arguments": json.dumps({"query": query})}}
            return self.send(200, completion("demo", "I will look at the sales table.", [call], messages))
        try:
            rows = json.loads(tool_results(messages)[-1])
            best = ", ".join(f"{r['product']} ({r['units']} units, {r['revenue']} revenue)" for r in rows)
            answer = f"The best sellers are {best}."
        except (ValueError, KeyError, IndexError, TypeError):
            answer = "I could not read the sales figures: " + (tool_results(messages) or ["no result"])[-1]
        self.send(200, completion("demo", answer, None, messages))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog is fixed when the socket is bound: hundreds of tasks in flight open
    # their connections at once, and the default of 5 turns that into refused connections.
    request_queue_size = 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every answer")
    parser.add_argument("--api-key", default=os.environ.get("MODEL_SERVER_KEY", "test-key"),
                        help="key required under /secured/")
    parser.add_argument("--request-log",
                        help="append '<arrival epoch> <goal>' for each task's first request")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.latency_ms, server.api_key, server.verbose = args.latency_ms, args.api_key, args.verbose
    server.request_log = open(args.request_log, "a") if args.request_log else None
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
