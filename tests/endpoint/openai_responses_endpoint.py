#!/usr/bin/env python3
"""A scripted OpenAI Responses API endpoint for the real-CLI test tier.

    python3 openai_responses_endpoint.py REQUEST_LOG
        [--mode worker|error|failed|hang|worktree|slow|malformed|empty]

Listens on 127.0.0.1 on a free port, prints the port as the first line of
stdout, then serves until killed. Every request is appended to REQUEST_LOG
as one JSON line: {"method", "path", "body"} (the body parsed as JSON when it
is JSON).

`--mode worker` (the default) plays a dispatch worker driving Codex's shell
tool. For each `POST /v1/responses` that offers a shell tool, the next step
is chosen by how many tool outputs (`function_call_output` items) the input
already holds:

  0  shell: mark the first item of $DISPATCH_PLAN done
  1  shell: "$DISPATCH_BIN" worker finding --severity high "Real CLI finding"
  2  shell: "$DISPATCH_BIN" worker ask "Which region?"
  3  shell: write $DISPATCH_OUTPUT, check the remaining items, touch .done,
     echo CODEX_SANDBOX_NETWORK_DISABLED (so the next request shows the
     worker's sandbox)
  4+ a final assistant message

The call is shaped for whichever shell tool the request offers: `shell`
(`{"command": ["bash", "-lc", ...]}`), `shell_command` (`{"command": ...}`)
or `exec_command` (`{"cmd": ...}`). Requests without one (the CLI's own side
calls) get a short text answer. `--mode error` answers every responses
request with HTTP 400 invalid_request_error; `--mode failed` with a 200
stream of response.created then response.failed (error code server_error),
which Codex treats as a dropped stream and retries stream_max_retries times.
`--mode hang` answers the first main call with one shell command that
starts a background python3 sleep, writes its pid (inside Codex's pid
namespace) to $DISPATCH_TASK_DIR/grandchild.pid and then sleeps itself
(the call's own timeout 600 s), and never answers the call that follows
(Codex returns to the model after about 30 s whatever the timeout), so the
task can only end by its timeout; both sleeps get $DISPATCH_TASK_DIR as
an argument, for the test to find them in /proc. `--mode worktree` has the worker write and commit
edited.txt in its working directory (its git worktree), then finish the
plan as step 3 does. `--mode slow` plays the worker, but sends every
streamed event SLOW_DELAY seconds after the last, as a loaded API streams.
`--mode empty` completes every main-loop response with no output at all
and a usage of zero tokens, as a proxy that swallowed the prompt might.
`--mode malformed` answers every responses request with a stream that
starts well (response.created) and then carries data that is not JSON, as
a broken proxy might, and ends without response.completed; a request with
`stream` false gets a 200 whose body is not JSON either.

The answer is the Responses API's server-sent event sequence:
response.created, response.output_item.added,
response.function_call_arguments.delta/.done or response.output_text.delta
/.done, response.output_item.done, response.completed (with `usage`); or a
whole response object when `stream` is false.

Python 3 standard library only; binds the loopback address only.
"""

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sse import BROKEN_BODY, send_broken_body, start_event_stream

# Token counts reported per main-loop response, so a test can check that
# they reach dispatch's usage (cached tokens are part of input tokens).
MAIN_INPUT_TOKENS = 1000
MAIN_CACHED_TOKENS = 200
MAIN_OUTPUT_TOKENS = 50
SIDE_INPUT_TOKENS = 10
SIDE_OUTPUT_TOKENS = 5

ERROR_MESSAGE = "scripted endpoint refuses this request (dispatch real-cli test)"
FAILED_CODE = "server_error"
FAILED_MESSAGE = "scripted endpoint failed this response (dispatch real-cli test)"

# `--mode slow`: the pause before every streamed event, in seconds.
SLOW_DELAY = 0.12

# `--mode malformed`: what a broken proxy sends instead of JSON.

MARK_FIRST = r"""python3 - "$DISPATCH_PLAN" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
text = text.replace("- [ ] ", "- [x] ", 1)
open(path, "w").write(text)
print("marked the first item done")
EOF"""

FINISH = r"""printf 'Real CLI worker output\n' > "$DISPATCH_OUTPUT"
python3 - "$DISPATCH_PLAN" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read().replace("- [ ] ", "- [x] ")
open(path, "w").write(text)
print("checked the remaining items")
EOF
touch "$DISPATCH_IPC_DIR/.done"
echo "CODEX_SANDBOX_NETWORK_DISABLED=${CODEX_SANDBOX_NETWORK_DISABLED:-unset}"
echo finished"""

STEPS = [
    MARK_FIRST,
    '"$DISPATCH_BIN" worker finding --severity high "Real CLI finding" '
    "--location src/lib.rs:1",
    '"$DISPATCH_BIN" worker ask "Which region?"',
    FINISH,
]
FINAL_TEXT = "All four plan items are done."

# `--mode worktree`: edit and commit a file where the CLI runs (its
# worktree), then finish the plan.
IN_WORKTREE = [
    "echo made-by-codex > edited.txt && git add edited.txt && "
    "git -c user.name=codex -c user.email=codex@example.invalid "
    "commit -q -m 'Edit from Codex'",
    FINISH,
]

# `--mode hang`: a command that starts a grandchild in the background,
# notes its pid, and never returns, so the task can only end by timeout.
# Codex runs commands in a new pid namespace (bubblewrap), so `$!` is not
# the pid outside it: both sleeps carry the task folder as an argument, for
# the test to find them in /proc.
HANG_TOOL_TIMEOUT_MS = 600000
HANG = (
    "python3 -c 'import time; time.sleep(300)' \"$DISPATCH_TASK_DIR\" & "
    'echo $! > "$DISPATCH_TASK_DIR/grandchild.pid"; '
    "python3 -c 'import time; time.sleep(300)' \"$DISPATCH_TASK_DIR\""
)

# The shell tools Codex may offer, by name, and how a command is passed.
SHELL_TOOLS = ("shell", "shell_command", "exec_command")


class State:
    lock = threading.Lock()
    log_path = None
    mode = "worker"


def log_request(method, path, headers, raw):
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    line = json.dumps({"method": method, "path": path, "body": body})
    with State.lock:
        with open(State.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
    return body


def tool_output_count(body):
    items = body.get("input")
    if not isinstance(items, list):
        return 0
    return sum(
        1
        for item in items
        if isinstance(item, dict)
        and item.get("type") in ("function_call_output", "custom_tool_call_output")
    )


def shell_tool(body):
    """The name of the shell tool the request offers, or None."""
    names = [
        tool.get("name")
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "function"
    ]
    for name in SHELL_TOOLS:
        if name in names:
            return name
    return None


def shell_arguments(tool, command):
    # The hang step must outlast any task timeout a test gives: with 30 s,
    # Codex stopped the job itself and went on to the final message.
    ms = HANG_TOOL_TIMEOUT_MS if State.mode == "hang" else 30000
    if tool == "shell":
        return {"command": ["bash", "-lc", command], "timeout_ms": ms}
    if tool == "shell_command":
        return {"command": command, "timeout_ms": ms}
    return {"cmd": command, "yield_time_ms": ms}


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def plan_output(body):
    """The output items of the next answer, and whether it is a main call."""
    tool = shell_tool(body)
    if tool is None:
        return [message_item("OK")], False
    if State.mode == "empty":
        return [], True
    step = tool_output_count(body)
    if State.mode == "hang" and step >= 1:
        # Codex hands a long command back to the model after at most about
        # 30 s (the command goes on in the background), then asks again:
        # that call never gets an answer, so the task still ends only by
        # its timeout, however long a loaded machine needs it to be.
        time.sleep(HANG_TOOL_TIMEOUT_MS / 1000)
    steps = {"hang": [HANG], "worktree": IN_WORKTREE}.get(State.mode, STEPS)
    if step < len(steps):
        call = {
            "type": "function_call",
            "id": new_id("fc_"),
            "status": "completed",
            "call_id": new_id("call_"),
            "name": tool,
            "arguments": json.dumps(shell_arguments(tool, steps[step])),
        }
        return [call], True
    return [message_item(FINAL_TEXT)], True


def message_item(text):
    return {
        "type": "message",
        "id": new_id("msg_"),
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def usage(main):
    if main and State.mode == "empty":
        return {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        }
    input_tokens = MAIN_INPUT_TOKENS if main else SIDE_INPUT_TOKENS
    output_tokens = MAIN_OUTPUT_TOKENS if main else SIDE_OUTPUT_TOKENS
    cached = MAIN_CACHED_TOKENS if main else 0
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(body, response_id, status, output, main):
    value = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": body.get("model") or "gpt-5-codex",
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
    }
    if status == "completed":
        value["usage"] = usage(main)
    return value


def sse_events(body, output, main):
    response_id = new_id("resp_")
    yield "response.created", {
        "type": "response.created",
        "response": response_object(body, response_id, "in_progress", [], main),
    }
    for index, item in enumerate(output):
        if item["type"] == "function_call":
            yield "response.output_item.added", {
                "type": "response.output_item.added",
                "output_index": index,
                "item": dict(item, arguments="", status="in_progress"),
            }
            raw = item["arguments"]
            for start in range(0, len(raw), 40):
                yield "response.function_call_arguments.delta", {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": raw[start : start + 40],
                }
            yield "response.function_call_arguments.done", {
                "type": "response.function_call_arguments.done",
                "item_id": item["id"],
                "output_index": index,
                "arguments": raw,
            }
        else:
            text = item["content"][0]["text"]
            yield "response.output_item.added", {
                "type": "response.output_item.added",
                "output_index": index,
                "item": dict(item, content=[], status="in_progress"),
            }
            yield "response.content_part.added", {
                "type": "response.content_part.added",
                "item_id": item["id"],
                "output_index": index,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            }
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                yield "response.output_text.delta", {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "delta": piece,
                }
            yield "response.output_text.done", {
                "type": "response.output_text.done",
                "item_id": item["id"],
                "output_index": index,
                "content_index": 0,
                "text": text,
            }
            yield "response.content_part.done", {
                "type": "response.content_part.done",
                "item_id": item["id"],
                "output_index": index,
                "content_index": 0,
                "part": item["content"][0],
            }
        yield "response.output_item.done", {
            "type": "response.output_item.done",
            "output_index": index,
            "item": item,
        }
    yield "response.completed", {
        "type": "response.completed",
        "response": response_object(body, response_id, "completed", output, main),
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-openai/1"

    def log_message(self, format, *args):  # noqa: A002 - keep stderr quiet
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", new_id("req_"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_failed_stream(self, body):
        """A 200 stream that starts a response and then fails it."""
        start_event_stream(self)
        response_id = new_id("resp_")
        created = response_object(body, response_id, "in_progress", [], True)
        failed = response_object(body, response_id, "failed", [], True)
        failed["error"] = {"code": FAILED_CODE, "message": FAILED_MESSAGE}
        for name, payload in (
            ("response.created", {"type": "response.created", "response": created}),
            ("response.failed", {"type": "response.failed", "response": failed}),
        ):
            chunk = f"event: {name}\ndata: {json.dumps(payload)}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()

    def send_malformed(self, body):
        """A 200 stream that starts well, then is not JSON; or, for a
        request that does not stream, a 200 whose body is not JSON."""
        if not body.get("stream"):
            send_broken_body(self)
            return
        start_event_stream(self)
        created = response_object(body, new_id("resp_"), "in_progress", [], True)
        payload = {"type": "response.created", "response": created}
        self.wfile.write(
            f"event: response.created\ndata: {json.dumps(payload)}\n\n".encode()
        )
        self.wfile.write(
            b'event: response.output_item.added\ndata: {"type": "response.outp\n\n'
        )
        self.wfile.write(b"event: response.output_item.added\ndata: " + BROKEN_BODY + b"\n\n")
        self.wfile.flush()

    def do_HEAD(self):
        log_request("HEAD", self.path, self.headers, b"")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        log_request("GET", self.path, self.headers, b"")
        path = self.path.split("?", 1)[0]
        if path.endswith("/models"):
            self.send_json(200, {"object": "list", "data": [], "models": []})
            return
        self.send_json(404, {"error": {"message": "Not found", "type": "not_found"}})

    def do_POST(self):
        raw = self.read_body()
        body = log_request("POST", self.path, self.headers, raw)
        path = self.path.split("?", 1)[0]
        if not isinstance(body, dict):
            body = {}
        if path != "/v1/responses":
            self.send_json(
                404, {"error": {"message": "Not found", "type": "invalid_request_error"}}
            )
            return
        if State.mode == "error":
            self.send_json(
                400,
                {
                    "error": {
                        "message": ERROR_MESSAGE,
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "scripted_refusal",
                    }
                },
            )
            return
        if State.mode == "failed" and body.get("stream"):
            self.send_failed_stream(body)
            return
        if State.mode == "malformed":
            self.send_malformed(body)
            return
        output, main = plan_output(body)
        if not body.get("stream"):
            self.send_json(
                200, response_object(body, new_id("resp_"), "completed", output, main)
            )
            return
        start_event_stream(self, ("x-request-id", new_id("req_")))
        for name, payload in sse_events(body, output, main):
            if State.mode == "slow":
                time.sleep(SLOW_DELAY)
            chunk = f"event: {name}\ndata: {json.dumps(payload)}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="file to append one JSON line per request to")
    parser.add_argument(
        "--mode",
        choices=["worker", "error", "failed", "hang", "worktree", "slow", "malformed", "empty"],
        default="worker",
    )
    args = parser.parse_args()
    State.log_path = args.log
    State.mode = args.mode
    open(args.log, "a").close()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
