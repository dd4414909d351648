"""probe-ping against real uWSGI instances, over HTTP and over a unix socket."""
import os

import pytest

from conftest import APPS, BIN, must_fail, run_tool, write
from sandbox_server import free_port

APP_INI = """[uwsgi]
plugins = python3
master = true
processes = 1
chdir = {apps}
wsgi-file = envapp.py
env = PING_STATUS={status}
{socket}
"""


def start_app(world, uwsgi_runner, status, over):
    if over == "http":
        port = free_port()
        socket_line, target = f"http-socket = 127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    else:
        path = os.path.join(world, "app.sock")
        socket_line, target = f"socket = {path}", f"unix:{path}"
    ini = write(os.path.join(world, "app.ini"),
                APP_INI.format(apps=APPS, status=status, socket=socket_line))
    uwsgi_runner(ini, os.path.join(world, "app.log"))
    return target


@pytest.mark.emperor
@pytest.mark.parametrize("over", ["http", "unix"])
def test_answers_200_exits_0(world, uwsgi_runner, over):
    target = start_app(world, uwsgi_runner, 200, over)
    result = run_tool("probe-ping", "--timeout", "5", target)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.emperor
@pytest.mark.parametrize("over", ["http", "unix"])
def test_answers_500_fails_saying_500(world, uwsgi_runner, over):
    target = start_app(world, uwsgi_runner, 500, over)
    # it asks again until the timeout, then says the last answer: a timeout
    # that allows only one slow answer on a loaded machine ends on "timeout"
    result = run_tool("probe-ping", "--timeout", "3", target)
    must_fail(result, 1, r"^probe-ping: .*status 500")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.emperor
def test_other_path_is_asked(world, uwsgi_runner):
    """--path changes what is requested: / answers 200 where /ping answers 500."""
    target = start_app(world, uwsgi_runner, 500, "unix")
    assert run_tool("probe-ping", "--timeout", "2", "--path", "/", target).returncode == 0


def test_nothing_listening_on_port_says_refused():
    result = run_tool("probe-ping", "--timeout", "0.3", f"http://127.0.0.1:{free_port()}")
    must_fail(result, 1, "^probe-ping: .*refused")


def test_dead_unix_socket_says_refused(world):
    """A socket file whose server is gone (no vacuum) refuses connections."""
    import socket
    path = os.path.join(world, "dead.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.close()
    result = run_tool("probe-ping", "--timeout", "0.3", f"unix:{path}")
    must_fail(result, 1, "^probe-ping: .*refused")


def test_missing_socket_file_says_so(world):
    result = run_tool("probe-ping", "--timeout", "0.3", f"unix:{world}/none.sock")
    must_fail(result, 1, "^probe-ping: .*no socket")


@pytest.mark.emperor
def test_waits_for_a_late_starter(world, uwsgi_runner):
    """Retries until the app comes up, within the timeout."""
    import subprocess
    port = free_port()
    probe = subprocess.Popen([os.path.join(BIN, "probe-ping"), "--timeout", "20",
                              f"http://127.0.0.1:{port}"],
                             stderr=subprocess.PIPE, text=True)
    ini = write(os.path.join(world, "app.ini"), APP_INI.format(
        apps=APPS, status=200, socket=f"http-socket = 127.0.0.1:{port}"))
    uwsgi_runner(ini, os.path.join(world, "app.log"))
    assert probe.wait(20) == 0, probe.stderr.read()


def test_bad_target_is_a_usage_error():
    result = run_tool("probe-ping", "ftp://x")
    must_fail(result, 1, "^probe-ping: .*http://HOST:PORT or unix:/path")


def test_help():
    result = run_tool("probe-ping", "--help")
    assert result.returncode == 0
    assert "usage: probe-ping" in result.stdout
