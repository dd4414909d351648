"""The example app: a greeting, and /ping for the deployer's health check."""
import os


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong\n"]
    greeting = os.environ.get("GREETING", "Hello")
    body = f"{greeting} from uwsgi-deploy's example app\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]
