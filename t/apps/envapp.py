"""Test app: / returns os.environ as JSON; /ping answers PING_STATUS (default 200)."""
import json
import os


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/ping":
        status = os.environ.get("PING_STATUS", "200")
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b"pong\n"]
    body = json.dumps(dict(os.environ)).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
