#!/usr/bin/env python3
"""A scripted Gemini API endpoint for the real-CLI test tier.

    python3 gemini_endpoint.py REQUEST_LOG
        [--mode worker|error|unavailable|hang|worktree|slow|malformed]

Listens on 127.0.0.1 on a free port, prints the port as the first line of
stdout, then serves until killed. Every request is appended to REQUEST_LOG
as one JSON line: {"method", "path", "body"} (the body parsed as JSON when it
is JSON).

`--mode worker` (the default) plays a dispatch worker driving Gemini CLI's
shell tool (`run_shell_command`, found by name in the request's
`tools[].functionDeclarations`). For each
`POST /v1beta/models/MODEL:streamGenerateContent?alt=sse` (or
`:generateContent`) that offers the shell tool, the next step is chosen by
how many `functionResponse` parts the conversation already holds:

  0  shell: mark the first item of $DISPATCH_PLAN done
  1  shell: "$DISPATCH_BIN" worker finding --severity high "Real CLI finding"
  2  shell: "$DISPATCH_BIN" worker ask "Which region?"
  3  shell: write $DISPATCH_OUTPUT, check the remaining items, touch .done,
     echo GEMINI_CLI (so the next request shows the worker's environment)
  4+ a final text answer, finishReason STOP

`--mode worktree` plays the same way with two steps: edit and commit
`edited.txt` where the CLI runs (its worktree), then finish the plan.
`--mode hang` has one step: a command that starts a grandchild in the
background, writes its pid to "$DISPATCH_TASK_DIR/grandchild.pid", and then
blocks forever, so the task can only end by its timeout.

Requests without the shell tool (the CLI's own side calls, such as its
next-speaker check, which asks for JSON) get a short answer: JSON naming
the user as the next speaker when a JSON response is asked for, else "OK".
`:countTokens` gets a count. Used as the CLI's HTTPS proxy, it logs each
`CONNECT` (a call to some other host) and refuses it with 502.

`--mode error` answers every model request with HTTP 400 INVALID_ARGUMENT;
`--mode unavailable` with HTTP 503 UNAVAILABLE (which the CLI retries, up
to its `general.maxAttempts` setting).

`--mode slow` plays the worker, but sends every streamed chunk SLOW_DELAY
seconds after the last, as a loaded API streams. `--mode malformed`
answers every streamed model request with a stream that starts well (a
chunk of text) and then carries data that is not JSON, as a broken proxy
might, and ends without a finish reason; `:generateContent` gets a 200
whose body is not JSON either.

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
# they reach dispatch's usage: prompt tokens per request, candidate tokens
# per response.
MAIN_INPUT_TOKENS = 1000
MAIN_OUTPUT_TOKENS = 50
SIDE_INPUT_TOKENS = 10
SIDE_OUTPUT_TOKENS = 5

ERROR_MESSAGE = "scripted endpoint refuses this request (dispatch real-cli test)"
UNAVAILABLE_MESSAGE = "The model is overloaded. Please try again later."

# `--mode slow`: the pause before every streamed chunk, in seconds.
SLOW_DELAY = 0.15

# `--mode malformed`: what a broken proxy sends instead of JSON.

# The error modes: HTTP status, the API's status name, the message.
ERRORS = {
    "error": (400, "INVALID_ARGUMENT", ERROR_MESSAGE),
    "unavailable": (503, "UNAVAILABLE", UNAVAILABLE_MESSAGE),
}

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
echo "GEMINI_CLI=${GEMINI_CLI:-unset}"
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

# `--mode worktree`: edit and commit a file where the CLI runs (its
# worktree), then finish the plan.
IN_WORKTREE = [
    (
        "echo made-by-gemini > edited.txt && git add edited.txt && "
        "git -c user.name=gemini -c user.email=gemini@example.invalid "
        "commit -q -m 'Edit from Gemini CLI'",
        "Edit and commit a file",
    ),
    (FINISH, "Write the output and finish the plan"),
]

# `--mode hang`: a command that starts a grandchild in the background,
# notes its pid, and never returns, so the task can only end by timeout.
HANG = (
    "python3 -c 'import time; time.sleep(300)' & "
    'echo $! > "$DISPATCH_TASK_DIR/grandchild.pid"; '
    "python3 -c 'import time; time.sleep(300)'",
    "Wait for a long job",
)


class State:
    lock = threading.Lock()
    log_path = None
    mode = "worker"


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


def function_response_count(body):
    count = 0
    for content in body.get("contents") or []:
        if not isinstance(content, dict):
            continue
        count += sum(
            1
            for part in content.get("parts") or []
            if isinstance(part, dict) and "functionResponse" in part
        )
    return count


def shell_tool(body):
    """The name of the shell tool the request offers, or None."""
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        for decl in tool.get("functionDeclarations") or []:
            if isinstance(decl, dict) and decl.get("name") == "run_shell_command":
                return decl["name"]
    return None


def wants_json(body):
    config = body.get("generationConfig") or body.get("config") or {}
    return config.get("responseMimeType") == "application/json"


def plan_response(body):
    """The parts of the next answer and whether it is a main-loop answer."""
    tool = shell_tool(body)
    if tool is None:
        if wants_json(body):
            text = json.dumps(
                {
                    "reasoning": "The model finished its turn (scripted).",
                    "next_speaker": "user",
                }
            )
        else:
            text = "OK"
        return [{"text": text}], False
    step = function_response_count(body)
    steps = {"hang": [HANG], "worktree": IN_WORKTREE}.get(State.mode, STEPS)
    if step < len(steps):
        command, description = steps[step]
        call = {
            "functionCall": {
                "id": "call_" + uuid.uuid4().hex[:16],
                "name": tool,
                "args": {"command": command, "description": description},
            }
        }
        return [call], True
    return [{"text": FINAL_TEXT}], True


def usage(main):
    prompt = MAIN_INPUT_TOKENS if main else SIDE_INPUT_TOKENS
    output = MAIN_OUTPUT_TOKENS if main else SIDE_OUTPUT_TOKENS
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    }


def model_of(path):
    # /v1beta/models/gemini-2.5-flash:streamGenerateContent
    name = path.rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def chunks(path, parts, main):
    """The streamed answer: text split in two chunks, then usage and STOP."""
    model = model_of(path)
    response_id = uuid.uuid4().hex[:20]
    pieces = []
    for part in parts:
        if "text" in part:
            text = part["text"]
            half = len(text) // 2
            pieces.extend([{"text": text[:half]}, {"text": text[half:]}])
        else:
            pieces.append(part)
    for index, part in enumerate(pieces):
        last = index == len(pieces) - 1
        candidate = {
            "content": {"role": "model", "parts": [part]},
            "index": 0,
        }
        chunk = {
            "candidates": [candidate],
            "modelVersion": model,
            "responseId": response_id,
        }
        if last:
            candidate["finishReason"] = "STOP"
            chunk["usageMetadata"] = usage(main)
        yield chunk


def whole(path, parts, main):
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": usage(main),
        "modelVersion": model_of(path),
        "responseId": uuid.uuid4().hex[:20],
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-gemini/1"

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

    def do_HEAD(self):
        log_request("HEAD", self.path, b"")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        log_request("GET", self.path, b"")
        self.send_json(200, {})

    def do_CONNECT(self):
        # Set as HTTPS_PROXY, the endpoint sees (and refuses) every call the
        # CLI tries to make to another host.
        log_request("CONNECT", self.path, b"")
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.close_connection = True

    def do_POST(self):
        raw = self.read_body()
        body = log_request("POST", self.path, raw)
        path = self.path.split("?", 1)[0]
        if not isinstance(body, dict):
            body = {}
        method = path.rsplit(":", 1)[-1] if ":" in path else ""
        if method == "countTokens":
            self.send_json(200, {"totalTokens": MAIN_INPUT_TOKENS})
            return
        if method not in ("streamGenerateContent", "generateContent"):
            self.send_json(
                404,
                {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}},
            )
            return
        if State.mode in ERRORS:
            code, status, message = ERRORS[State.mode]
            self.send_json(
                code, {"error": {"code": code, "message": message, "status": status}}
            )
            return
        if State.mode == "malformed":
            self.send_malformed(path, method)
            return
        parts, main = plan_response(body)
        if method == "generateContent":
            self.send_json(200, whole(path, parts, main))
            return
        start_event_stream(self)
        for chunk in chunks(path, parts, main):
            if State.mode == "slow":
                time.sleep(SLOW_DELAY)
            self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
            self.wfile.flush()

    def send_malformed(self, path, method):
        """A 200 stream that starts well, then is not JSON; or, for
        `:generateContent`, a 200 whose body is not JSON."""
        if method == "generateContent":
            send_broken_body(self)
            return
        start_event_stream(self)
        first = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "Work"}]}, "index": 0}
            ],
            "modelVersion": model_of(path),
            "responseId": uuid.uuid4().hex[:20],
        }
        self.wfile.write(f"data: {json.dumps(first)}\r\n\r\n".encode())
        self.wfile.write(b'data: {"candidates": [{"content": {"ro\r\n\r\n')
        self.wfile.write(b"data: " + BROKEN_BODY + b"\r\n\r\n")
        self.wfile.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="file to append one JSON line per request to")
    parser.add_argument(
        "--mode",
        choices=["worker", *ERRORS, "hang", "worktree", "slow", "malformed"],
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
