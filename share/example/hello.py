"""The example app: a greeting, /ping for the deployer's health check, and
POST /jobs, which queues a job for the worker (worker.py, in the Procfile)."""
import os

import jobs


def application(environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong\n"]
    if path == "/jobs" and environ.get("REQUEST_METHOD") == "POST":
        job = jobs.enqueue()
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [f"queued job {job}; the worker does it\n".encode()]
    greeting = os.environ.get("GREETING", "Hello")
    body = f"{greeting} from uwsgi-deploy's example app\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]
