"""Asking a version whether it is ready: GET /ping must answer 200.

Targets are `http://HOST:PORT` (spoken with requests) or `unix:/path` (spoken
in the uwsgi protocol, which is what nginx's uwsgi_pass sends to the socket).
"""
import socket
import struct
import time

import requests

from . import DeployError

RETRY_INTERVAL = 0.05   # seconds between attempts; a refused connect is cheap
ATTEMPT_TIMEOUT = 5.0   # one request may not take longer than this


def free_loopback_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProbeResult:
    def __init__(self, ok, seen):
        self.ok = ok        # True when the answer was 200
        self.seen = seen    # what was seen, for messages: "status 500", "refused"

    def __repr__(self):
        return f"ProbeResult({self.ok}, {self.seen!r})"


def uwsgi_packet(path, host="localhost"):
    """A uwsgi-protocol request (modifier1 0): little-endian sized key/value pairs."""
    path_only, _, query = path.partition("?")
    variables = {
        "REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH_INFO": path_only,
        "QUERY_STRING": query, "SCRIPT_NAME": "", "SERVER_PROTOCOL": "HTTP/1.0",
        "SERVER_NAME": host, "SERVER_PORT": "80", "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "uwsgi-deploy-probe",
    }
    body = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
        for k, v in ((k.encode(), v.encode()) for k, v in variables.items()))
    return struct.pack("<BHB", 0, len(body), 0) + body


def _status_from_response(head):
    """Status code from an HTTP status line such as b'HTTP/1.1 200 OK'."""
    line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def get_unix(socket_path, path, timeout):
    """One uwsgi-protocol GET over a unix socket; returns a ProbeResult."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
        sock.sendall(uwsgi_packet(path))
        head = b""
        while b"\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    except FileNotFoundError:
        return ProbeResult(False, "no socket")
    except ConnectionRefusedError:
        return ProbeResult(False, "refused")
    except socket.timeout:
        return ProbeResult(False, "timeout")
    except OSError as err:
        return ProbeResult(False, err.strerror or str(err))
    finally:
        sock.close()
    status = _status_from_response(head)
    if status is None:
        return ProbeResult(False, "no HTTP answer" if not head else "bad answer")
    return ProbeResult(status == 200, f"status {status}")


def get_http(base_url, path, timeout, session=None):
    try:
        response = (session or requests).get(base_url.rstrip("/") + path, timeout=timeout,
                                             allow_redirects=False)
    except requests.exceptions.ConnectionError as err:
        text = str(err)
        return ProbeResult(False, "refused" if "refused" in text.lower() else "connection error")
    except requests.exceptions.Timeout:
        return ProbeResult(False, "timeout")
    return ProbeResult(response.status_code == 200, f"status {response.status_code}")


def check_target(target):
    if target.startswith("unix:"):
        if not target[5:]:
            raise DeployError(f"{target}: no socket path after 'unix:'")
    elif not target.startswith(("http://", "https://")):
        raise DeployError(f"{target}: target must be http://HOST:PORT or unix:/path")


def probe_once(target, path, timeout=ATTEMPT_TIMEOUT, session=None):
    if target.startswith("unix:"):
        return get_unix(target[5:], path, timeout)
    return get_http(target, path, timeout, session)


def wait_for_200(target, path="/ping", timeout=30.0, alive=None):
    """Retry GET path on target until it answers 200 or timeout passes.

    alive(), when given, is called between attempts and may raise to stop early
    (the vassal died). Returns the last ProbeResult; .ok tells success.
    """
    check_target(target)
    deadline = time.monotonic() + timeout
    session = requests.Session() if not target.startswith("unix:") else None
    while True:
        remaining = deadline - time.monotonic()
        result = probe_once(target, path, max(0.05, min(ATTEMPT_TIMEOUT, remaining)), session)
        if result.ok:
            return result
        if alive:
            alive()
        if time.monotonic() + RETRY_INTERVAL >= deadline:
            return result
        time.sleep(RETRY_INTERVAL)


def probe_command(target, path, timeout):
    """probe-ping: raise DeployError saying what was last seen unless 200 came."""
    result = wait_for_200(target, path, timeout)
    if not result.ok:
        raise DeployError(f"GET {path} on {target}: no 200 within {timeout:g} s (last: {result.seen})")
