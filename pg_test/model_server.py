#!/usr/bin/env python3
"""A scripted model server speaking three wire formats over HTTP: OpenAI Chat Completions
(POST .../chat/completions), OpenAI Responses (POST .../responses) and Anthropic Messages
(POST .../messages).

It stands in for a real model in agent_loop's end-to-end tests, demo and benchmark: a separate
process on loopback, so requests travel the same HTTP path as in production. Each protocol is
read into one neutral conversation (goal, system text, turns so far, tool results, user texts,
reasoning handed back) and the answer is written back in the same protocol, so one script
drives all three.

Which answer it gives is decided by the request's "model" field:

  scripted   The goal (first user message) carries a script after the marker "SCRIPT:", a JSON
             array with one entry per model turn; turn k answers the request that already holds
             k assistant turns (the last entry repeats). An entry may hold
               "content": text,      "calls": [{"name": ..., "arguments": {...} or "raw"}]
                                     ({{turn}} in arguments is replaced too),
               "answer": final text (placeholders {{last_tool_result}}, {{tool_results}},
                         {{lessons}}, {{tools}}, {{last_user}}, {{reasoning_seen}}, {{turn}},
                         {{tool_choice}}),
               "reasoning": text (sent as a reasoning item / thinking block with the turn),
               "if_tool_choice": {"required" | "none" | "auto": an entry used instead when the
                         request's tool_choice is that},
               "summary": text (or {"fault": ...}) answering agent_loop's request for a
                         compaction summary (default: "model summary: " and the first step),
               "if_compacted": an entry used instead once the request carries a compaction
                         summary (turns are counted in the request, so they restart then),
               "fault": "429" | "500" | "503" | "overloaded" | "hang" | "malformed" |
                        "wrong_shape" | "cut" | "huge" | "quota" | "context_length" |
                        "unparsable" (llama.cpp's 500 for output its parser rejects), with
                        "times" (how many identical requests get the fault before the entry
                        answers normally; default: always) and "retry_after",
               "delay_ms": latency before answering,
               "cached_tokens": how many of the prompt's tokens to report as served from the
                         prompt cache (at most all of them).
  demo       Looks up the best sellers with sql_query, then reports them.
  echo       Answers "echo: <goal>" at once (benchmarks).

Requests are validated like the real servers would: malformed JSON, a tool result without the
call it answers, reasoning or thinking not handed back unchanged, a missing API key (paths
under /secured/) or anthropic-version header get 400 or 401. Paths under /echo-key/ answer
401 with the credential the request sent in the message, as some proxies do.
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


class Conversation:
    """What a request holds, whatever its protocol."""

    def __init__(self):
        self.system = ""
        self.goal = ""
        self.user_texts = []      # every user text after the goal (guidance, rejections, ...)
        self.tool_results = []
        self.turn = 0             # assistant turns so far
        self.tools = []
        self.reasoning_seen = []  # reasoning items handed back, by id or signature
        self.size = 0
        self.cached = 0           # prompt tokens reported as cache hits
        self.tool_choice = "auto"  # "auto", "required" or "none", whatever the protocol

    @property
    def compacted(self):
        """Whether agent_loop replaced older turns with a summary (context compaction)."""
        return any(t.startswith(COMPACTION_PREFIX) for t in self.user_texts)


COMPACTION_PREFIX = "Earlier steps of this task were summarised"


def lessons(system):
    return " | ".join(line[2:] for line in system.splitlines() if line.startswith("- ")) or "none"


def fill(template, conv):
    results = conv.tool_results
    return (template.replace("{{last_tool_result}}", results[-1] if results else "none")
                    .replace("{{tool_results}}", " ; ".join(results) or "none")
                    .replace("{{lessons}}", lessons(conv.system))
                    .replace("{{tools}}", ",".join(sorted(conv.tools)) or "none")
                    .replace("{{last_user}}", conv.user_texts[-1] if conv.user_texts else "none")
                    .replace("{{reasoning_seen}}", ",".join(conv.reasoning_seen) or "none")
                    .replace("{{turn}}", str(conv.turn))
                    .replace("{{tool_choice}}", conv.tool_choice))


def script_of(goal):
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


def read_tool_choice(body, conv, anthropic=False):
    """The request's tool_choice, checked as the real servers check it (llama.cpp's server
    takes only the strings; Anthropic's is an object). None, or the problem."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not conv.tools:
        return "'tool_choice' is only allowed when 'tools' are specified"
    if anthropic:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "none"):
            return f"tool_choice: unsupported {choice!r}"
        conv.tool_choice = {"any": "required"}.get(kind, kind)
    elif choice in ("auto", "none", "required"):
        conv.tool_choice = choice
    else:
        return f"tool_choice must be \"auto\", \"none\" or \"required\", not {json.dumps(choice)}"
    return None


def add_user_text(conv, text):
    if not conv.goal:
        conv.goal = text
    else:
        conv.user_texts.append(text)


def usage_numbers(conv, answer_size):
    """(prompt tokens, of which cached, completion tokens)."""
    prompt = conv.size // 4
    return prompt, min(conv.cached, prompt), answer_size // 4


class Chat:
    """OpenAI Chat Completions."""
    suffix = "/chat/completions"

    @staticmethod
    def authorized(headers, key):
        return headers.get("Authorization") == f"Bearer {key}"

    @staticmethod
    def read(body, headers):
        if not isinstance(body.get("model"), str):
            return None, "'model' is required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None, "'messages' must be a non-empty array"
        conv, open_calls = Conversation(), set()
        conv.size = len(json.dumps(messages))
        for i, m in enumerate(messages):
            role = m.get("role")
            if role not in ("system", "user", "assistant", "tool"):
                return None, f"messages[{i}]: invalid role {role!r}"
            if role == "system":
                conv.system += m.get("content") or ""
            elif role == "user":
                add_user_text(conv, m.get("content") or "")
            elif role == "assistant":
                conv.turn += 1
                for call in m.get("tool_calls") or []:
                    args = call.get("function", {}).get("arguments")
                    if call.get("type") != "function" or not isinstance(args, str):
                        return None, f"messages[{i}]: tool_calls need type 'function' and string arguments"
                    open_calls.add(call.get("id"))
            elif m.get("tool_call_id") not in open_calls:
                return None, f"messages[{i}]: tool message answers no preceding tool call"
            else:
                conv.tool_results.append(m.get("content") or "")
        for t in body.get("tools") or []:
            if t.get("type") != "function" or not t.get("function", {}).get("name"):
                return None, "each tool needs type 'function' and a function name"
            conv.tools.append(t["function"]["name"])
        return conv, read_tool_choice(body, conv)

    @staticmethod
    def answer(model, conv, content, calls, reasoning):
        message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["name"], "arguments": c["arguments"]}}
                                     for c in calls]
        prompt, cached, completion = usage_numbers(conv, len(json.dumps(message)))
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
        }

    @staticmethod
    def error(status, message, code=None, kind="invalid_request_error"):
        return {"error": {"message": message, "type": kind, "code": code}}

    malformed_shape = {"id": "x", "object": "chat.completion", "result": "no choices here"}


class Responses(Chat):
    """OpenAI Responses: input items in, output items out; reasoning items travel back."""
    suffix = "/responses"

    @staticmethod
    def read(body, headers):
        if not isinstance(body.get("model"), str):
            return None, "'model' is required"
        items = body.get("input")
        if not isinstance(items, list) or not items:
            return None, "'input' must be a non-empty array"
        conv, open_calls, in_turn = Conversation(), set(), False
        conv.system = body.get("instructions") or ""
        conv.size = len(json.dumps(items)) + len(conv.system)
        for i, item in enumerate(items):
            kind = item.get("type", "message")
            role = item.get("role")
            assistant_side = kind in ("reasoning", "function_call") or (kind == "message" and role == "assistant")
            if assistant_side and not in_turn:
                conv.turn += 1
            in_turn = assistant_side
            if kind == "message":
                if role not in ("user", "assistant", "system", "developer"):
                    return None, f"input[{i}]: invalid role {role!r}"
                if role == "user":
                    add_user_text(conv, item.get("content") if isinstance(item.get("content"), str) else "")
            elif kind == "function_call":
                if not isinstance(item.get("arguments"), str) or not item.get("call_id"):
                    return None, f"input[{i}]: function_call needs a call_id and string arguments"
                open_calls.add(item["call_id"])
            elif kind == "function_call_output":
                if item.get("call_id") not in open_calls:
                    return None, f"input[{i}]: No tool call found for function call output with call_id {item.get('call_id')}"
                conv.tool_results.append(item.get("output") or "")
            elif kind == "reasoning":
                if not str(item.get("encrypted_content", "")).startswith("enc:"):
                    return None, f"input[{i}]: reasoning item has invalid encrypted_content"
                conv.reasoning_seen.append(item.get("id"))
            else:
                return None, f"input[{i}]: unknown item type {kind!r}"
        for t in body.get("tools") or []:
            if t.get("type") != "function" or not t.get("name"):
                return None, "each tool needs type 'function' and a name"
            conv.tools.append(t["name"])
        return conv, read_tool_choice(body, conv)

    @staticmethod
    def answer(model, conv, content, calls, reasoning):
        output = []
        if reasoning:
            output.append({"type": "reasoning", "id": f"rs_{conv.turn}", "summary": [],
                           "encrypted_content": f"enc:{reasoning}"})
        if content is not None:
            output.append({"type": "message", "id": f"msg_{conv.turn}", "role": "assistant",
                           "status": "completed",
                           "content": [{"type": "output_text", "text": content, "annotations": []}]})
        for c in calls:
            output.append({"type": "function_call", "id": f"fc_{c['id']}", "call_id": c["id"],
                           "name": c["name"], "arguments": c["arguments"], "status": "completed"})
        prompt, cached, completion = usage_numbers(conv, len(json.dumps(output)))
        return {"id": "resp_test", "object": "response", "created_at": int(time.time()),
                "status": "completed", "model": model, "output": output, "error": None,
                "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
                          "output_tokens": completion,
                          "output_tokens_details": {"reasoning_tokens": len(reasoning or "") // 4},
                          "total_tokens": prompt + completion}}

    malformed_shape = {"id": "x", "object": "response", "status": "completed"}


class Anthropic:
    """Anthropic Messages: content blocks; thinking blocks must come back signed."""
    suffix = "/messages"

    @staticmethod
    def authorized(headers, key):
        return headers.get("x-api-key") == key

    @staticmethod
    def read(body, headers):
        if not headers.get("anthropic-version"):
            return None, "anthropic-version: header is required"
        if not isinstance(body.get("model"), str):
            return None, "model: Field required"
        if not isinstance(body.get("max_tokens"), int):
            return None, "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None, "messages: at least one message is required"
        conv, previous_calls = Conversation(), set()
        system = body.get("system") or ""
        conv.system = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)
        conv.size = len(json.dumps(messages)) + len(conv.system)
        for i, m in enumerate(messages):
            role = m.get("role")
            expected = "user" if i % 2 == 0 else "assistant"
            if role != expected:
                return None, f"messages.{i}: roles must alternate between user and assistant, starting with user"
            content = m.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list) or not blocks:
                return None, f"messages.{i}: content must be a non-empty list"
            calls = set()
            for block in blocks:
                kind = block.get("type")
                if role == "user" and kind == "text":
                    add_user_text(conv, block.get("text") or "")
                elif role == "user" and kind == "tool_result":
                    if block.get("tool_use_id") not in previous_calls:
                        return None, (f"messages.{i}: unexpected `tool_use_id` found in `tool_result` "
                                      "blocks; each tool_result block must have a corresponding "
                                      "tool_use block in the previous message")
                    conv.tool_results.append(block.get("content") or "")
                elif role == "assistant" and kind == "tool_use":
                    if not isinstance(block.get("input"), dict):
                        return None, f"messages.{i}: tool_use.input must be an object"
                    calls.add(block.get("id"))
                elif role == "assistant" and kind == "thinking":
                    if not str(block.get("signature", "")).startswith("sig:"):
                        return None, f"messages.{i}: Invalid `signature` in `thinking` block"
                    conv.reasoning_seen.append(block["signature"])
                elif role == "assistant" and kind == "text":
                    pass
                else:
                    return None, f"messages.{i}: unexpected {kind!r} block in a {role} message"
            if role == "assistant":
                conv.turn += 1
            previous_calls = calls
        for t in body.get("tools") or []:
            if not t.get("name") or not isinstance(t.get("input_schema"), dict):
                return None, "tools: each tool needs a name and an input_schema"
            conv.tools.append(t["name"])
        return conv, read_tool_choice(body, conv, anthropic=True)

    @staticmethod
    def answer(model, conv, content, calls, reasoning):
        blocks = []
        if reasoning:
            blocks.append({"type": "thinking", "thinking": reasoning, "signature": f"sig:{conv.turn}"})
        if content:
            blocks.append({"type": "text", "text": content})
        for c in calls:
            blocks.append({"type": "tool_use", "id": c["id"], "name": c["name"],
                           "input": json.loads(c["arguments"]) if c["arguments"].startswith("{") else {}})
        prompt, cached, completion = usage_numbers(conv, len(json.dumps(blocks)))
        return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                "content": blocks, "stop_reason": "tool_use" if calls else "end_turn",
                "stop_sequence": None,
                # Anthropic counts cache reads apart from input_tokens.
                "usage": {"input_tokens": prompt - cached, "cache_read_input_tokens": cached,
                          "cache_creation_input_tokens": 0, "output_tokens": completion}}

    @staticmethod
    def error(status, message, code=None, kind=None):
        kinds = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                 429: "rate_limit_error", 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kind or kinds.get(status, "api_error"),
                                           "message": message}}

    malformed_shape = {"id": "x", "type": "message", "result": "no content here"}


PROTOCOLS = (Chat, Responses, Anthropic)


class Headers(dict):
    """Request headers; names are matched case-insensitively."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)


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

    def parse_request(self):
        """The request line and headers, without the email package's header parser, which
        took most of this server's CPU per request (the benchmark shares two cores with it)."""
        self.command, self.request_version = None, "HTTP/0.9"
        self.close_connection = True
        self.requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(400, f"Bad request line {self.requestline!r}")
            return False
        self.command, self.path, self.request_version = words
        self.headers = Headers()
        for _ in range(100):
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                self.send_error(400, "Bad header line")
                return False
            self.headers[name.strip().lower()] = value.strip()
        connection = self.headers.get("Connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive")
        return True

    def send(self, status, payload, headers=None):
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
                 "Content-Type: application/json", f"Content-Length: {len(raw)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        # One write: head and body in a single segment.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw)
        if self.server.verbose:
            self.log_request(status, len(raw))

    def error(self, status, message, code=None, headers=None, kind=None):
        protocol = getattr(self, "protocol", Chat)
        self.send(status, protocol.error(status, message, code, kind), headers)

    def do_GET(self):
        if self.path == "/stats":
            return self.send(200, STATS)
        self.error(404, "not found")

    def do_POST(self):
        arrived = time.time()
        STATS["requests"] += 1
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.protocol = next((p for p in PROTOCOLS if self.path.endswith(p.suffix)), None)
        if self.protocol is None:
            self.protocol = Chat
            return self.error(404, f"unknown path {self.path}")
        if self.path.startswith("/secured/") and not self.protocol.authorized(self.headers, self.server.api_key):
            return self.error(401, "Incorrect API key provided", "invalid_api_key")
        if self.path.startswith("/echo-key/"):
            # As some proxies do: the credential the request carried, back in the error.
            sent = self.headers.get("Authorization") or self.headers.get("x-api-key") or ""
            return self.error(401, f"Incorrect API key provided: {sent}", "invalid_api_key")
        try:
            body = json.loads(raw)
        except ValueError as e:
            return self.error(400, f"request body is not JSON: {e}")
        conv, problem = self.protocol.read(body, self.headers)
        if problem:
            return self.error(400, problem)
        if self.server.latency_ms:
            time.sleep(self.server.latency_ms / 1000)
        if conv.turn == 0 and self.server.request_log:
            with LOG_LOCK:
                self.server.request_log.write(f"{arrived:.6f} {conv.goal}\n")
                self.server.request_log.flush()
        model = body["model"]
        if model == "echo":
            return self.reply(model, conv, "echo: " + conv.goal)
        if model == "demo":
            return self.demo(conv)
        if model != "scripted":
            return self.error(404, f"The model `{model}` does not exist", "model_not_found")
        script, problem = script_of(conv.goal)
        if problem:
            return self.error(400, problem)
        if conv.system.startswith("You summarise the earlier steps"):
            return self.summary(model, conv, script)
        entry = script[min(conv.turn, len(script) - 1)]
        if conv.compacted and "if_compacted" in entry:
            entry = entry["if_compacted"]
        entry = entry.get("if_tool_choice", {}).get(conv.tool_choice, entry)
        if entry.get("delay_ms"):
            time.sleep(entry["delay_ms"] / 1000)
        if entry.get("fault") and self.fault(entry, raw):
            return
        conv.cached = entry.get("cached_tokens", 0)
        # "{{turn}}" in arguments makes each turn's call differ from the last.
        calls = [{"id": f"call_{conv.turn}_{i}", "name": c["name"],
                  "arguments": (c["arguments"] if isinstance(c.get("arguments"), str)
                                else json.dumps(c.get("arguments", {}))).replace("{{turn}}", str(conv.turn))}
                 for i, c in enumerate(entry.get("calls") or [])]
        content = entry.get("content")
        if "answer" in entry:
            content = fill(entry["answer"], conv)
        self.reply(model, conv, content, calls, entry.get("reasoning"))

    def summary(self, model, conv, script):
        """agent_loop asks for a compaction summary: the script's first "summary" entry (text, or
        an entry with a fault), else a fixed text naming the steps' first line."""
        entry = next((e["summary"] for e in script if "summary" in e), None)
        if isinstance(entry, dict):
            if entry.get("fault") and self.fault(entry, json.dumps(conv.user_texts).encode()):
                return
            entry = entry.get("answer")
        steps = conv.goal.split("The steps so far:\n", 1)[-1].split("\n")[0]
        self.reply(model, conv, entry if entry is not None else f"model summary: {steps}")

    def reply(self, model, conv, content, calls=(), reasoning=None):
        self.send(200, self.protocol.answer(model, conv, content, list(calls), reasoning))

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
        anthropic = self.protocol is Anthropic
        if fault == "429":
            self.error(429, "Rate limit reached", "rate_limit_exceeded", retry_after)
        elif fault == "overloaded":
            self.error(529, "Overloaded", None, retry_after, "overloaded_error")
        elif fault in ("500", "502", "503"):
            self.error(int(fault), "The server had an error", None, retry_after)
        elif fault == "unparsable":
            self.error(500, "The model produced output that does not match the expected peg-native format",
                       500, retry_after, "server_error")
        elif fault == "quota" and anthropic:
            self.error(400, "Your credit balance is too low to access the Anthropic API.")
        elif fault == "quota":
            self.error(429, "You exceeded your current quota", "insufficient_quota")
        elif fault == "context_length" and anthropic:
            self.error(400, "prompt is too long: 210000 tokens > 200000 maximum")
        elif fault == "context_length":
            self.error(400, "This model's maximum context length is 8 tokens", "context_length_exceeded")
        elif fault == "hang":
            time.sleep(entry.get("hang_s", 30))
            self.reply("scripted", Conversation(), "too late")
        elif fault == "malformed":
            self.send(200, b"this is not json {")
        elif fault == "wrong_shape":
            self.send(200, self.protocol.malformed_shape)
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

    def demo(self, conv):
        if conv.turn == 0:
            query = ("SELECT product, sum(quantity) AS units, sum(quantity * price) AS revenue "
                     "FROM demo.sales GROUP BY product ORDER BY units DESC LIMIT 3")
            call = {"id": "call_demo_1", "name": "sql_query", "arguments": json.dumps({"query": query})}
            return self.reply("demo", conv, "I will look at the sales table.", [call])
        try:
            rows = json.loads(conv.tool_results[-1])
            best = ", ".join(f"{r['product']} ({r['units']} units, {r['revenue']} revenue)" for r in rows)
            answer = f"The best sellers are {best}."
        except (ValueError, KeyError, IndexError, TypeError):
            answer = "I could not read the sales figures: " + (conv.tool_results or ["no result"])[-1]
        self.reply("demo", conv, answer)


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
