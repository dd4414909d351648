"""The maintenance page (deploy-maintenance APP on): every request gets 503,
Retry-After and the operator's message, HTML-escaped. The message and the
delay come from the record deploy-maintenance writes (its path in
UD_MAINTENANCE_RECORD), read again at each request so that `on` with a new
message changes the page without a restart. The record is data: whatever it
holds is checked here again and escaped."""
import html
import json
import os

DEFAULT_MESSAGE = "This site is down for maintenance. Please try again later."
DEFAULT_RETRY_AFTER = 300
MAX_MESSAGE = 500
PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Down for maintenance</title></head>
<body><h1>Down for maintenance</h1><p>{message}</p></body></html>
"""


def read_record(path):
    """(message, retry_after) from the record; defaults for anything odd."""
    try:
        with open(path, encoding="utf-8") as stream:
            record = json.load(stream)
    except (OSError, ValueError):
        record = {}
    message = record.get("message") if isinstance(record, dict) else None
    if not isinstance(message, str) or not message or len(message) > MAX_MESSAGE or not message.isprintable():
        message = DEFAULT_MESSAGE
    retry = record.get("retry_after") if isinstance(record, dict) else None
    if not isinstance(retry, int) or isinstance(retry, bool) or not 0 <= retry <= 86400:
        retry = DEFAULT_RETRY_AFTER
    return message, retry


def application(environ, start_response):
    message, retry = read_record(os.environ.get("UD_MAINTENANCE_RECORD", ""))
    body = PAGE.format(message=html.escape(message)).encode("utf-8")
    start_response("503 Service Unavailable", [
        ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
        ("Retry-After", str(retry)), ("Cache-Control", "no-store")])
    return [body]
