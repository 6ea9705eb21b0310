#!/usr/bin/env python3
"""A scripted Anthropic Messages API endpoint for the real-CLI test tier.

    python3 anthropic_endpoint.py REQUEST_LOG
        [--mode worker|error|overloaded|busy|limited|hang|worktree|slow|malformed]

Listens on 127.0.0.1 on a free port, prints the port as the first line of
stdout, then serves until killed. Every request is appended to REQUEST_LOG
as one JSON line: {"method", "path", "body"} (the body parsed as JSON when it
is JSON).

`--mode worker` (the default) plays a dispatch worker driving Claude Code's
Bash tool. For each `POST /v1/messages` that offers the Bash tool, the next
step is chosen by how many tool results the conversation already holds:

  0  Bash: mark the first item of $DISPATCH_PLAN done
  1  Bash: "$DISPATCH_BIN" worker finding --severity high "Real CLI finding"
  2  Bash: "$DISPATCH_BIN" worker ask "Which region?"
  3  Bash: write $DISPATCH_OUTPUT, check the remaining items, touch .done,
     echo IS_SANDBOX (so the next request shows the worker's environment)
  4+ a final text message, stop_reason end_turn

Requests without the Bash tool (the CLI's own side calls) get a short text
answer. `--mode error` answers every message request with HTTP 400
invalid_request_error; `--mode overloaded` with HTTP 529 overloaded_error.
`--mode busy` answers the first BUSY_FAILURES message requests with HTTP
529 overloaded_error that may be retried (`x-should-retry: true`, a short
`retry-after-ms`), then finishes the plan as `--mode limited` does, with
the usual final text.
`--mode limited` finishes the plan with one Bash call (as step 3 does),
then gives a usage-limit message as its final text, so the CLI ends with
a `result` that claims success and carries the limit message.
`--mode hang` runs a command that never returns (see HANG below).

Python 3 standard library only; binds the loopback address only.
"""

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sse import start_event_stream

# Token counts reported per main-loop response, so a test can check that
# they reach dispatch's usage: input per request, output per response.
MAIN_INPUT_TOKENS = 1000
MAIN_OUTPUT_TOKENS = 50
SIDE_INPUT_TOKENS = 10
SIDE_OUTPUT_TOKENS = 5

ERROR_MESSAGE = "scripted endpoint refuses this request (dispatch real-cli test)"

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
echo "IS_SANDBOX=${IS_SANDBOX:-unset}"
echo finished"""

STEPS = [
    (MARK_FIRST, "Mark the first plan item done"),
    (
        '"$DISPATCH_BIN" worker finding --severity high "Real CLI finding" '
        "--location src/lib.rs:1",
        "Report a finding",
    ),
    ('"$DISPATCH_BIN" worker ask "Which region?"', "Ask which region"),
    (FINISH, "Write the output and finish the plan"),
]
FINAL_TEXT = "All four plan items are done."
# `--mode busy`: how many message requests are refused before one is served.
BUSY_FAILURES = 2
# `--mode limited`: the final text, as Claude Code words a reached limit.
LIMIT_TEXT = "Claude AI usage limit reached|1760000000"

# `--mode worktree`: edit and commit a file where the CLI runs (its
# worktree), then finish the plan.
IN_WORKTREE = [
    (
        "echo made-by-claude > edited.txt && git add edited.txt && "
        "git -c user.name=claude -c user.email=claude@example.invalid "
        "commit -q -m 'Edit from Claude Code'",
        "Edit and commit a file",
    ),
    (FINISH, "Write the output and finish the plan"),
]

# `--mode sandbox`: the whole task of `worker`, with an edit committed in
# the worktree and a try at the main checkout, which a sandbox keeps
# read-only (the try's error goes back to the model as the tool's result).
IN_SANDBOX = STEPS[:3] + [
    (
        "echo made-by-claude > edited.txt && git add edited.txt && "
        "git -c user.name=claude -c user.email=claude@example.invalid "
        "commit -q -m 'Edit from Claude Code' && "
        "(echo escape > \"$(git rev-parse --path-format=absolute --git-common-dir)/../escape.txt\" "
        "2>/dev/null && echo 'main checkout: written' || echo 'main checkout: Read-only file system')",
        "Edit and commit a file",
    ),
    STEPS[3],
]

# `--mode hang`: a command that starts a grandchild in the background,
# notes its pid, and never returns, so the task can only end by timeout.
HANG = (
    # Not `sleep`: Claude Code refuses long sleeps in its Bash tool.
    "python3 -c 'import time; time.sleep(300)' & "
    'echo $! > "$DISPATCH_TASK_DIR/grandchild.pid"; '
    "python3 -c 'import time; time.sleep(300)'",
    "Wait for a long job",
)


class State:
    lock = threading.Lock()
    log_path = None
    mode = "worker"
    # `--mode busy`: message requests refused so far.
    refused = 0


def log_request(method, path, headers, raw):
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    line = json.dumps(
        {
            "method": method,
            "path": path,
            "beta": headers.get("anthropic-beta"),
            "body": body,
        }
    )
    with State.lock:
        with open(State.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
    return body


def tool_result_count(body):
    count = 0
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            count += sum(
                1
                for block in content
                if isinstance(block, dict) and block.get("type") == "tool_result"
            )
    return count


def offers_bash(body):
    return any(
        isinstance(tool, dict) and tool.get("name") == "Bash"
        for tool in body.get("tools") or []
    )


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def plan_response(body):
    """The content blocks and stop reason of the next answer."""
    if not offers_bash(body):
        return [{"type": "text", "text": "OK"}], "end_turn", False
    step = tool_result_count(body)
    steps = {
        "hang": [HANG],
        "worktree": IN_WORKTREE,
        "sandbox": IN_SANDBOX,
        "limited": [(FINISH, "Write the output and finish the plan")],
        "busy": [(FINISH, "Write the output and finish the plan")],
    }.get(State.mode, STEPS)
    if step < len(steps):
        command, description = steps[step]
        block = {
            "type": "tool_use",
            "id": new_id("toolu_"),
            "name": "Bash",
            "input": {"command": command, "description": description},
        }
        return [block], "tool_use", True
    final = LIMIT_TEXT if State.mode == "limited" else FINAL_TEXT
    return [{"type": "text", "text": final}], "end_turn", True


def sse_events(body, blocks, stop_reason, main):
    model = body.get("model") or "claude-sonnet-4-5"
    input_tokens = MAIN_INPUT_TOKENS if main else SIDE_INPUT_TOKENS
    output_tokens = MAIN_OUTPUT_TOKENS if main else SIDE_OUTPUT_TOKENS
    yield "message_start", {
        "type": "message_start",
        "message": {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        },
    }
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield "content_block_start", {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            text = block["text"]
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                yield "content_block_delta", {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
        else:
            yield "content_block_start", {
                "type": "content_block_start",
                "index": index,
                "content_block": {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": {},
                },
            }
            raw = json.dumps(block["input"])
            for start in range(0, len(raw), 40):
                yield "content_block_delta", {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": raw[start : start + 40],
                    },
                }
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }
    yield "message_stop", {"type": "message_stop"}


def whole_message(body, blocks, stop_reason, main):
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "claude-sonnet-4-5",
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": MAIN_INPUT_TOKENS if main else SIDE_INPUT_TOKENS,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": MAIN_OUTPUT_TOKENS if main else SIDE_OUTPUT_TOKENS,
        },
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-anthropic/1"

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

    def send_json(self, status, payload, extra_headers=()):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", new_id("req_"))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        log_request("HEAD", self.path, self.headers, b"")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        log_request("GET", self.path, self.headers, b"")
        self.send_json(200, {})

    def do_POST(self):
        raw = self.read_body()
        body = log_request("POST", self.path, self.headers, raw)
        path = self.path.split("?", 1)[0]
        if not isinstance(body, dict):
            body = {}
        if path == "/v1/messages/count_tokens":
            self.send_json(200, {"input_tokens": MAIN_INPUT_TOKENS})
            return
        if path != "/v1/messages":
            self.send_json(
                404,
                {
                    "type": "error",
                    "error": {"type": "not_found_error", "message": "Not found"},
                },
            )
            return
        if State.mode == "error":
            self.send_json(
                400,
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": ERROR_MESSAGE},
                },
            )
            return
        if State.mode == "overloaded":
            self.send_json(
                529,
                {
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                },
                [("x-should-retry", "false")],
            )
            return
        if State.mode == "busy":
            with State.lock:
                refuse = State.refused < BUSY_FAILURES
                State.refused += 1 if refuse else 0
            if refuse:
                self.send_json(
                    529,
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                    [("x-should-retry", "true"), ("retry-after-ms", "100"), ("retry-after", "0")],
                )
                return
        blocks, stop_reason, main = plan_response(body)
        if not body.get("stream"):
            if State.mode == "malformed":
                # Claude Code falls back to a plain request after a broken
                # stream; that answer is broken too.
                raw = b"<html>502 Bad Gateway</html>"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                return
            self.send_json(200, whole_message(body, blocks, stop_reason, main))
            return
        start_event_stream(self, ("request-id", new_id("req_")))
        if State.mode == "malformed":
            # A stream that starts well and then carries data that is not
            # JSON, as a broken proxy might.
            self.wfile.write(b"event: message_start\ndata: {\"type\": \"message_start\", \"mess\n\n")
            self.wfile.write(b"event: content_block_delta\ndata: <html>502 Bad Gateway</html>\n\n")
            self.wfile.flush()
            return
        for name, payload in sse_events(body, blocks, stop_reason, main):
            chunk = f"event: {name}\ndata: {json.dumps(payload)}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()
            if State.mode == "slow":
                # Every event a while after the last, as a loaded API
                # streams; the worker must still finish.
                time.sleep(0.15)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="file to append one JSON line per request to")
    parser.add_argument(
        "--mode", choices=["worker", "error", "overloaded", "busy", "limited", "hang", "worktree", "sandbox", "slow", "malformed"], default="worker"
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
