"""What a version opens once it takes traffic (issue 21): the check from
/proc runs again during the post-switch watch, over the version's web
processes and its Procfile's. A listener opened after the check before the
switch (1 s after the first request a worker serves once live; from a
Procfile process's child) makes the version broken: the watch switches
back, the old version serves on, nothing is lost, and the push is refused
naming the socket. A clean version (clients, not listeners) goes live.
Real Emperor, default settings."""
import os
import re
import signal

import pytest

from conftest import must_fail, wait_until
from load import BUSY_INI, BusyLoad, LoadLoop
from sandbox import app_beside_another, process_ended, scripts_running
from sandbox_server import port_open
from uwsgi_deploy.probe import probe_once

pytestmark = [pytest.mark.emperor, pytest.mark.xdist_group(__name__)]   # its module world, built once

INI = BUSY_INI + "enable-threads = true\n"   # the app's own threads run

# Appended to the test app: on the first request a worker serves once its
# version is live (the live socket leads to its own), a timer opens a
# listener 1 s later. (Counting the deployer's /ping before the switch as
# the first would race the check before the switch on a slow machine, and
# waiting for a client's first request would race the window's end: under
# load a client's first request can wait seconds in the old version's queue.)
LISTEN_AFTER_FIRST_REQUEST = '''
import socket as _socket, threading as _threading
_held = []
_live_socket = os.path.join(os.path.dirname(os.getcwd()), "run", "app.socket")
_own_socket = os.path.basename(os.getcwd()) + ".socket"


def _live():
    try:
        return os.readlink(_live_socket) == _own_socket
    except OSError:
        return False


def _listen():
    sock = _socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    _held.append(sock)


_inner = application


def application(environ, start_response):
    if not _held and _live():
        _held.append(None)
        _threading.Timer(1.0, _listen).start()
    return _inner(environ, start_response)
'''

# The same, with what a well-behaved app opens: a TCP client connection (to
# nginx) and a connected UDP socket (a statsd client that connect()s).
CLIENTS_AFTER_FIRST_REQUEST = LISTEN_AFTER_FIRST_REQUEST.replace('''    sock = _socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    _held.append(sock)''', '''    _held.append(_socket.create_connection(("127.0.0.1", int(os.environ["NGINX_PORT"]))))
    udp = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    udp.connect(("127.0.0.1", 8125))
    _held.append(udp)
    print("clients open in pid", os.getpid(), flush=True)''')
assert "clients open" in CLIENTS_AFTER_FIRST_REQUEST

# The same, taking over another app's live link (as `socket = %d../run/other.socket`
# did: unlink it, bind there), once for the version (the first worker to get there).
TAKE_OVER_AFTER_FIRST_REQUEST = LISTEN_AFTER_FIRST_REQUEST.replace('''    sock = _socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    _held.append(sock)''', '''    try:
        os.close(os.open(_live_socket + "." + _own_socket + ".took", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return
    path = os.path.join(os.path.dirname(_live_socket), "other.socket")
    os.unlink(path)
    sock = _socket.socket(_socket.AF_UNIX)
    sock.bind(path)
    sock.listen()
    _held.append(sock)''')
assert ".took" in TAKE_OVER_AFTER_FIRST_REQUEST

# A Procfile worker; with LISTEN set, the worker starts a child that opens
# a TCP listener 1 s later (the child prints its port and pid to the log),
# in a session of its own as a daemonized helper would be: the SIGTERM the
# supervisor gives the worker's process group does not reach it.
WORKER = '''import os, socket, subprocess, sys, time
print("worker", os.getpid(), "started", flush=True)
if os.environ.get("LISTEN"):
    subprocess.Popen([sys.executable, "-c", "import os, socket, time; time.sleep(1); s = socket.socket(); "
                      "s.bind(('127.0.0.1', 0)); s.listen(); "
                      "print('child', os.getpid(), 'listens on', s.getsockname()[1], flush=True); time.sleep(120)"],
                     start_new_session=True)
while True:
    time.sleep(0.2)
'''


def version_files(environment=""):
    return {"uwsgi.ini": INI, "Procfile": "worker: python3 worker.py\n", "worker.py": WORKER,
            "environment.sh": environment}


@pytest.fixture(scope="module")
def world(stop_later):
    """An Emperor and nginx; `app` live at v1 (two workers, a Procfile worker),
    and another app, `other`."""
    box = app_beside_another(version_files())   # the default settings
    yield box
    stop_later(box)


def workers_of(box):
    """{pid: version directory name} of the Procfile workers running, from /proc."""
    return {pid: version for pid, (script, version) in scripts_running(box.home + "/app-").items()
            if script == "worker.py"}


def push_v2(box, code="", environment="", load=None):
    """Push v2 (its app.py with code appended); the result."""
    box.commit_app("v2", extra=version_files(environment))
    app_py = os.path.join(box.source_repo(), "app.py")
    with open(app_py) as stream:
        text = stream.read()
    box.commit({"app.py": text + code})
    return box.push()


def refused_in_the_watch(box, result, live):
    """The push was refused by the watch's socket look, traffic went back to
    live and only its vassal runs; the refusal line."""
    line = must_fail(result, 1, r"remote: pre-receive: watch: (another app's live link changed while "
                                r"app-[0-9a-f]{12} served: |app-[0-9a-f]{12} opened what nginx does not reach "
                                r"after going live: )")
    new = re.search(r"watch: (another app's live link changed while )?(app-[0-9a-f]{12}) ", line).group(2)
    assert "Checking what " + new + " listens on" in result.stderr   # the check before the switch passed
    assert f"switched back to {live}" in result.stderr and f"{new} not deployed; {live} is still live" \
        in result.stderr
    assert box.app("app").live_version().run_name == live
    assert box.get("/").text == "v1"
    others = [box.app("other").live_version().run_name + ".ini"]
    assert box.vassal_inis() == sorted([f"{live}.ini", f"{live}.procs.ini", *others])
    box.wait_emperor_vassals([f"{live}.ini", f"{live}.procs.ini", *others], timeout=60)   # the new one's stopped
    return line, new


@pytest.mark.load
def test_a_listener_opened_1s_after_the_first_request_is_switched_back_under_load(world):
    live = world.app("app").live_version().run_name
    [old_worker] = workers_of(world)
    with BusyLoad(world, ["v1", "v2"]) as load:
        result = push_v2(world, LISTEN_AFTER_FIRST_REQUEST)
        load.settle()
    load.assert_nothing_lost()
    line, new = refused_in_the_watch(world, result, live)
    # each worker of the new version that served a client opened one
    assert re.search(r"after going live: tcp listener [^;]+( \(docs/security\.md\)|; tcp listener [^;]+ "
                     r"\(docs/security\.md\))$", line.rstrip()), line
    found = [(int(port), int(pid)) for port, pid in re.findall(r"tcp listener 127\.0\.0\.1:([0-9]+) \(pid ([0-9]+)\)",
                                                                line)]
    for port, holder in found:   # held by the new version's uWSGI workers, which go with its vassal
        wait_until(lambda: not port_open(port), 60, f"port {port} to close with {new}")
        assert process_ended(holder)
    assert list(workers_of(world)) == [old_worker]   # the old version's worker ran on


def test_a_listener_from_a_procfile_process_is_switched_back_and_its_holder_killed(world):
    live = world.app("app").live_version().run_name
    [old_worker] = workers_of(world)
    result = push_v2(world, environment="LISTEN=1\n")
    new = re.search(r"Checking what (app-[0-9a-f]{12}) listens on", result.stderr).group(1)
    with open(os.path.join(world.settings.log_dir, f"{new}.worker.log")) as stream:
        children = {int(pid): int(port) for pid, port in re.findall(r"^child ([0-9]+) listens on ([0-9]+)$",
                                                                    stream.read(), re.M)}
    try:
        line, _ = refused_in_the_watch(world, result, live)
        found = re.search(r"after going live: tcp listener 127\.0\.0\.1:([0-9]+) \(pid ([0-9]+)\) "
                          r"\(docs/security\.md\)$", line.rstrip())
        assert found, line
        port, holder = int(found.group(1)), int(found.group(2))
        assert children == {holder: port}   # the worker's child
        # not a process that stops with the version: killed at once
        assert process_ended(holder) and not port_open(port)
    finally:   # should it have been left running
        for pid in children:
            if not process_ended(pid):
                os.kill(pid, signal.SIGKILL)
    # the new version's worker got SIGTERM; the old one never stopped
    wait_until(lambda: list(workers_of(world)) == [old_worker], 60, "only the old version's worker")
    assert world.app("app").live_version().run_name == live


def test_another_apps_live_link_taken_over_after_going_live_is_put_back(world):
    live = world.app("app").live_version().run_name
    other = world.app("other")
    before = os.readlink(other.live_socket)
    with LoadLoop(world.url("/"), ["v1", "v2"], clients=2, max_seconds=120) as load:
        result = push_v2(world, TAKE_OVER_AFTER_FIRST_REQUEST)
    line, new = refused_in_the_watch(world, result, live)
    assert f"another app's live link changed while {new} served: {other.live_socket} (was -> {before}, " \
           "now a socket) (put back)" in line, line
    assert f"unix stream listener {other.live_socket} (pid " in line
    assert os.readlink(other.live_socket) == before
    assert probe_once("unix:" + other.live_socket, "/").ok
    assert sum(load.errors.values()) == 0 and set(load.statuses) == {200}, load.summary()


def test_a_clean_version_with_clients_goes_live(world):
    """Clients are not listeners: a version that connects out during the
    watch, with a Procfile worker, goes live."""
    with LoadLoop(world.url("/"), ["v1", "v2"], clients=2, max_seconds=120) as load:   # its first requests
        result = push_v2(world, CLIENTS_AFTER_FIRST_REQUEST, environment=f"NGINX_PORT={world.nginx_port}\n")
        load.wait_for(load.total + 20)
    assert result.returncode == 0, result.stderr
    assert sum(load.errors.values()) == 0 and set(load.statuses) == {200}, load.summary()
    looked = re.search(r"sockets: ([0-9]+) looks at up to ([0-9]+) processes while it served: none listens but "
                       r"its own socket and stats", result.stderr)
    assert looked, result.stderr
    # once a second in the 3-s window, and when it closes; master, 2 workers,
    # the processes vassal's master, the supervisor and the worker at least
    assert int(looked.group(1)) >= 4 and int(looked.group(2)) >= 6, looked.group(0)
    version = world.app("app").live_version()
    with open(version.log) as stream:
        assert "clients open in pid " in stream.read()   # they were open while it was watched
    assert world.get("/").text == "v2"
    wait_until(lambda: set(workers_of(world).values()) == {version.run_name}, 60, "only the new version's worker")
