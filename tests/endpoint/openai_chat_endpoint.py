#!/usr/bin/env python3
"""A scripted OpenAI Chat Completions endpoint for the real-CLI test tier.

    python3 openai_chat_endpoint.py REQUEST_LOG
        [--mode opencode|opencode-hang|opencode-worktree|aider|aider-worktree
                |error|opencode-slow|opencode-malformed|aider-slow|aider-malformed]

Listens on 127.0.0.1 on a free port, prints the port as the first line of
stdout, then serves until killed. Every request is appended to REQUEST_LOG
as one JSON line: {"method", "path", "body"} (the body parsed as JSON when it
is JSON).

`GET /v1/models` (and `/models`) lists one model. `POST /v1/chat/completions`
(also without the `/v1`) answers by mode:

`--mode opencode` plays a dispatch worker driving opencode's `bash` tool.
For each request that offers the `bash` tool, the next step is chosen by how
many `role: "tool"` messages the conversation already holds:

  0  bash: mark the first item of $DISPATCH_PLAN done
  1  bash: "$DISPATCH_BIN" worker finding --severity high "Real CLI finding"
  2  bash: "$DISPATCH_BIN" worker ask "Which region?"
  3  bash: write $DISPATCH_OUTPUT, check the remaining items, touch .done
  4+ a final text message, finish_reason "stop"

The tool call's arguments follow the `bash` tool's own JSON schema from the
request (`command`, plus `description` when the schema asks for it).

`--mode opencode-hang` answers the first such request with one `bash` call
that starts a grandchild in the background, writes its pid to
"$DISPATCH_TASK_DIR/grandchild.pid" and then blocks (a 300 s python3 sleep,
with the tool's own `timeout` argument, when the schema has one, set to
600000 ms), so the task can only end by dispatch's timeout.
`--mode opencode-worktree` edits and commits `edited.txt` where opencode
runs (its worktree), then finishes the plan as step 3 above does.

`--mode aider` plays a model answering aider (which has no tools): one reply
of whole-file edit blocks that rewrite the task's plan (every item checked)
and write its output file. The paths come from the prompt aider sends (the
worker prompt names them); they are made relative to aider's working
directory, the project root, when the prompt shows it.
`--mode aider-worktree` answers as `aider` does, and also writes
`edited.txt` (AIDER_EDIT_TEXT) where aider runs, by a relative path: in a
worktree task, the worktree, while the plan and output stay in the main
checkout's state folder.

Other requests (the CLIs' own side calls, such as opencode's session
title, which offers no tools, or an aider request without the worker
prompt) get a short text answer. Every answer carries `usage` (in a final
chunk with no choices when streamed): 1000 prompt and 50 completion tokens
for main-loop answers, 10 and 5 for side calls.

`--mode error` answers every completion request with HTTP 400 and an
OpenAI-style `invalid_request_error`.

`--mode opencode-slow` and `--mode aider-slow` play as `opencode` and
`aider` do, but slowly, as a loaded API answers: every streamed chunk comes
SLOW_DELAY seconds after the last, and a whole (`stream` false) answer is
sent in SLOW_PIECES pieces, SLOW_DELAY seconds apart.
`--mode opencode-malformed` and `--mode aider-malformed` answer every
completion request with a stream that starts well (the first chunk) and
then carries data that is not JSON, as a broken proxy might, and ends
without `[DONE]`; a request with `stream` false gets a 200 whose body is
not JSON either.

Used as the CLI's HTTP(S) proxy (with NO_PROXY for 127.0.0.1), it logs and
refuses every request for another host (`CONNECT` tunnels and absolute
URLs), so a test stays offline and can see what the CLI tried to reach.

Python 3 standard library only; binds the loopback address only.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sse import BROKEN_BODY, send_broken_body, start_event_stream

MAIN_PROMPT_TOKENS = 1000
MAIN_COMPLETION_TOKENS = 50
SIDE_PROMPT_TOKENS = 10
SIDE_COMPLETION_TOKENS = 5

MODEL = "scripted-model"
ERROR_MESSAGE = "scripted endpoint refuses this request (dispatch real-cli test)"
OUTPUT_TEXT = "Real CLI worker output\n"
# `--mode aider-worktree`: what aider writes to `edited.txt`.
AIDER_EDIT_TEXT = "made-by-aider"

# `--mode *-slow`: the pause before every streamed chunk (or piece of a
# whole answer), in seconds, and how many pieces a whole answer is sent in.
SLOW_DELAY = 0.12
SLOW_PIECES = 10

# `--mode *-malformed`: what a broken proxy sends instead of JSON.

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

# `--mode opencode-worktree`: edit and commit a file where opencode runs
# (its worktree), then finish the plan.
IN_WORKTREE = [
    (
        "echo made-by-opencode > edited.txt && git add edited.txt && "
        "git -c user.name=opencode -c user.email=opencode@example.invalid "
        "commit -q -m 'Edit from opencode'",
        "Edit and commit a file",
    ),
    (FINISH, "Write the output and finish the plan"),
]

# `--mode opencode-hang`: a command that starts a grandchild in the
# background, notes its pid, and never returns (well within the bash
# tool's own timeout), so the task can only end by dispatch's timeout.
HANG = (
    "python3 -c 'import time; time.sleep(300)' & "
    'echo $! > "$DISPATCH_TASK_DIR/grandchild.pid"; '
    "python3 -c 'import time; time.sleep(300)'",
    "Wait for a long job",
)
# The bash tool's `timeout` (milliseconds) for the hanging call, far beyond
# the task's own timeout.
HANG_TOOL_TIMEOUT_MS = 600000
SIDE_TEXT = "Scripted worker"


class State:
    lock = threading.Lock()
    log_path = None
    mode = "opencode"


def log_request(method, path, raw):
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    line = json.dumps({"method": method, "path": path, "body": body})
    with State.lock:
        with open(State.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
    return body


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def bash_tool(body):
    """The `bash` function tool the request offers, or None."""
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name") == "bash":
            return function
    return None


def tool_message_count(body):
    return sum(
        1
        for message in body.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "tool"
    )


def message_text(message):
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict)
        )
    return ""


def all_text(body):
    return "\n".join(
        message_text(m) for m in body.get("messages") or [] if isinstance(m, dict)
    )


def opencode_answer(body):
    """(text, tool_call, main) for the next opencode answer."""
    tool = bash_tool(body)
    if tool is None:
        return SIDE_TEXT, None, False
    step = tool_message_count(body)
    steps = {"opencode-hang": [HANG], "opencode-worktree": IN_WORKTREE}.get(
        State.mode, STEPS
    )
    if step >= len(steps):
        return FINAL_TEXT, None, True
    command, description = steps[step]
    arguments = {"command": command}
    properties = (tool.get("parameters") or {}).get("properties") or {}
    required = (tool.get("parameters") or {}).get("required") or []
    if "description" in properties or "description" in required:
        arguments["description"] = description
    if State.mode == "opencode-hang" and "timeout" in properties:
        arguments["timeout"] = HANG_TOOL_TIMEOUT_MS
    call = {
        "id": new_id("call_"),
        "name": "bash",
        "arguments": json.dumps(arguments),
    }
    return None, call, True


def relative(path, cwd):
    if cwd and os.path.isabs(path):
        try:
            rel = os.path.relpath(path, cwd)
        except ValueError:
            return path
        if not rel.startswith(".."):
            return rel
    return path


def aider_answer(body):
    """(text, None, main): whole-file edits of the plan and the output."""
    text = all_text(body)
    plan = re.search(r"(\S*\.dispatch/tasks/[^/\s`]+/plan\.md)", text)
    output = re.search(r"(\S*\.dispatch/tasks/[^/\s`]+/output\.md)", text)
    if not plan or "# Task:" not in text:
        return SIDE_TEXT, None, False
    cwd = None
    # The worker prompt says where the worker works: "Work in `/path`."
    found = re.search(r"Work in `([^`]+)`", text)
    if found:
        cwd = found.group(1)
    plan_path = plan.group(1).strip("`'\"")
    items = []
    try:
        with open(plan_path, encoding="utf-8") as handle:
            for line in handle:
                items.append(line.replace("- [ ] ", "- [x] ", 1))
    except OSError:
        items = []
    if not items:
        # The plan as the prompt shows it.
        items = [
            line.replace("- [ ] ", "- [x] ", 1) + "\n"
            for line in text.splitlines()
            if line.startswith("- [ ] ")
        ]
    parts = [
        "I checked off every item of the plan and wrote the output.\n",
        relative(plan_path, cwd),
        "```",
        "".join(items).rstrip("\n"),
        "```",
        "",
    ]
    if output:
        parts += [
            relative(output.group(1).strip("`'\""), cwd),
            "```",
            OUTPUT_TEXT.rstrip("\n"),
            "```",
            "",
        ]
    if State.mode == "aider-worktree":
        parts += ["edited.txt", "```", AIDER_EDIT_TEXT, "```", ""]
    return "\n".join(parts), None, True


def usage(main):
    prompt = MAIN_PROMPT_TOKENS if main else SIDE_PROMPT_TOKENS
    completion = MAIN_COMPLETION_TOKENS if main else SIDE_COMPLETION_TOKENS
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chunks(body, text, call, main):
    base = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or MODEL,
    }

    def chunk(delta, finish=None):
        return dict(
            base,
            choices=[{"index": 0, "delta": delta, "finish_reason": finish}],
        )

    yield chunk({"role": "assistant", "content": ""})
    if call is None:
        half = len(text) // 2
        for piece in (text[:half], text[half:]):
            yield chunk({"content": piece})
        finish = "stop"
    else:
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": ""},
                    }
                ]
            }
        )
        raw = call["arguments"]
        for start in range(0, len(raw), 40):
            yield chunk(
                {
                    "tool_calls": [
                        {"index": 0, "function": {"arguments": raw[start : start + 40]}}
                    ]
                }
            )
        finish = "tool_calls"
    yield chunk({}, finish)
    yield dict(base, choices=[], usage=usage(main))


def whole_completion(body, text, call, main):
    message = {"role": "assistant", "content": text}
    finish = "stop"
    if call is not None:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
        ]
        finish = "tool_calls"
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(main),
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-openai/1"

    def log_message(self, format, *args):  # noqa: A002 - keep stderr quiet
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_slowly(self, payload):
        """A whole JSON answer, sent in SLOW_PIECES pieces."""
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        size = -(-len(data) // SLOW_PIECES)
        for start in range(0, len(data), size):
            time.sleep(SLOW_DELAY)
            self.wfile.write(data[start : start + size])
            self.wfile.flush()

    def send_malformed(self, body):
        """A 200 stream that starts well, then is not JSON; or, for a
        request that does not stream, a 200 whose body is not JSON."""
        if not body.get("stream"):
            send_broken_body(self)
            return
        start_event_stream(self)
        first = next(chunks(body, "", None, True))
        self.wfile.write(f"data: {json.dumps(first)}\n\n".encode())
        self.wfile.write(b'data: {"id": "chatcmpl-x", "choices": [{"de\n\n')
        self.wfile.write(b"data: " + BROKEN_BODY + b"\n\n")
        self.wfile.flush()

    def outside(self):
        """A proxied plain-HTTP request for another host: refused."""
        if self.path.startswith("http://") or self.path.startswith("https://"):
            log_request(self.command, self.path, b"")
            self.send_json(403, {"error": {"message": "offline test: no proxying"}})
            self.close_connection = True
            return True
        return False

    def do_HEAD(self):
        log_request("HEAD", self.path, b"")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_CONNECT(self):
        # Set as the CLI's HTTPS proxy, the endpoint sees (and refuses)
        # every call that would leave the machine.
        log_request("CONNECT", self.path, b"")
        self.send_json(403, {"error": {"message": "offline test: no tunnels"}})
        self.close_connection = True

    def do_GET(self):
        if self.outside():
            return
        log_request("GET", self.path, b"")
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self.send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": MODEL, "object": "model", "created": 0, "owned_by": "test"}
                    ],
                },
            )
            return
        self.send_json(200, {})

    def do_POST(self):
        raw = self.read_body()
        if self.outside():
            return
        body = log_request("POST", self.path, raw)
        path = self.path.split("?", 1)[0].rstrip("/")
        if not isinstance(body, dict):
            body = {}
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self.send_json(
                404,
                {
                    "error": {
                        "message": f"no route {path}",
                        "type": "invalid_request_error",
                        "code": "not_found",
                    }
                },
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
        if State.mode.endswith("-malformed"):
            self.send_malformed(body)
            return
        slow = State.mode.endswith("-slow")
        if State.mode.startswith("aider"):
            text, call, main = aider_answer(body)
        else:
            text, call, main = opencode_answer(body)
        if not body.get("stream"):
            answer = whole_completion(body, text, call, main)
            if slow:
                self.send_slowly(answer)
            else:
                self.send_json(200, answer)
            return
        start_event_stream(self)
        for payload in chunks(body, text, call, main):
            if slow:
                time.sleep(SLOW_DELAY)
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="file to append one JSON line per request to")
    parser.add_argument(
        "--mode",
        choices=[
            "opencode",
            "opencode-hang",
            "opencode-worktree",
            "opencode-slow",
            "opencode-malformed",
            "aider",
            "aider-worktree",
            "aider-slow",
            "aider-malformed",
            "error",
        ],
        default="opencode",
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
