"""What the scripted endpoints share: the start of a server-sent-event
stream, and the answer of a broken gateway (used by their `malformed`
modes). Each endpoint imports it from its own folder, which Python puts
first on the module path of a script.

Python 3 standard library only.
"""

# What a proxy in the way might answer instead of JSON.
BROKEN_BODY = b"<html>502 Bad Gateway</html>"


def start_event_stream(handler, *headers):
    """A 200 `text/event-stream` response, closed at its end, with any
    extra (name, value) headers; the events are written after."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Connection", "close")
    for name, value in headers:
        handler.send_header(name, value)
    handler.end_headers()
    handler.close_connection = True


def send_broken_body(handler):
    """A 200 that says it is JSON and is not."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(BROKEN_BODY)))
    handler.end_headers()
    handler.wfile.write(BROKEN_BODY)
