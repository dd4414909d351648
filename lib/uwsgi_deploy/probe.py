"""Asking a version whether it is ready: GET /ping must answer 200.

Targets are `http://HOST:PORT` (spoken with requests) or `unix:/path` (spoken
in the uwsgi protocol, which is what nginx's uwsgi_pass sends to the socket).
"""
import select
import socket
import struct
import time

from . import DeployError
from .waiting import wait_until

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


QUEUE_FULL = "queue full"   # the listen queue had no room: busy, not broken


class PendingPing:
    """One uwsgi-protocol GET over a unix socket, sent at once and answered
    whenever the version gets to it. poll() never blocks, so a watcher can
    look at other things while a busy version keeps the request queued."""

    def __init__(self, socket_path, path, connect_timeout=ATTEMPT_TIMEOUT):
        self.started = time.monotonic()
        self.head = b""
        self.result = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(connect_timeout)
        try:
            self.sock.connect(socket_path)
            self.sock.sendall(uwsgi_packet(path))
            self.sock.setblocking(False)
        except OSError as err:
            self._finish(ProbeResult(False, _failure(err)))

    @property
    def age(self):
        return time.monotonic() - self.started

    def poll(self):
        """The ProbeResult once the status line (or a failure) is in, else None."""
        while self.result is None:
            try:
                chunk = self.sock.recv(4096)
            except BlockingIOError:
                return None
            except OSError as err:
                return self._finish(ProbeResult(False, _failure(err)))
            self.head += chunk
            if not chunk or b"\n" in self.head:
                self._finish(_result_from_head(self.head))
        return self.result

    def wait(self, timeout):
        """Block until the answer, at most timeout seconds after it was sent."""
        deadline = self.started + timeout
        while self.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._finish(ProbeResult(False, "timeout"))
            select.select([self.sock], [], [], remaining)
        return self.result

    def _finish(self, result):
        self.result = result
        self.sock.close()
        return result

    def close(self):
        self.sock.close()


def _failure(err):
    """What a failed connect/send/recv is called in messages."""
    if isinstance(err, FileNotFoundError):
        return "no socket"
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    if isinstance(err, socket.timeout):
        return "timeout"
    if isinstance(err, BlockingIOError):   # EAGAIN from connect: the backlog is full
        return QUEUE_FULL
    return err.strerror or str(err)


def _result_from_head(head):
    status = _status_from_response(head)
    if status is None:
        return ProbeResult(False, "no HTTP answer" if not head else "bad answer")
    return ProbeResult(status == 200, f"status {status}")


def get_unix(socket_path, path, timeout):
    """One uwsgi-protocol GET over a unix socket; returns a ProbeResult."""
    return PendingPing(socket_path, path, connect_timeout=timeout).wait(timeout)


def get_http(base_url, path, timeout, session=None):
    """One GET over HTTP; any failure of it (no connection, no answer in
    time, an answer requests cannot read) is a ProbeResult, not an exception."""
    import requests   # here, not at the top: only an HTTP probe pays for it
    try:
        response = (session or requests).get(base_url.rstrip("/") + path, timeout=timeout,
                                             allow_redirects=False)
    except requests.exceptions.ConnectionError as err:
        text = str(err)
        return ProbeResult(False, "refused" if "refused" in text.lower() else "connection error")
    except requests.exceptions.Timeout:
        return ProbeResult(False, "timeout")
    except requests.exceptions.RequestException as err:   # a garbled answer, say
        return ProbeResult(False, f"bad answer ({type(err).__name__})")
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
    session = None
    if not target.startswith("unix:"):
        import requests
        session = requests.Session()
    last = None

    def answered_200():
        nonlocal last
        remaining = deadline - time.monotonic()
        last = probe_once(target, path, max(0.05, min(ATTEMPT_TIMEOUT, remaining)), session)
        if not last.ok and alive:
            alive()
        return last.ok
    wait_until(answered_200, timeout, RETRY_INTERVAL)
    return last


def probe_command(target, path, timeout):
    """probe-ping: raise DeployError saying what was last seen unless 200 came."""
    result = wait_for_200(target, path, timeout)
    if not result.ok:
        raise DeployError(f"GET {path} on {target}: no 200 within {timeout:g} s (last: {result.seen})")
