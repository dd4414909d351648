"""Limits (issue 21, item 5): deploy-config reads at most 64 KiB of value
from stdin and never echoes it; an app's variables are bounded so that no
exec of its environment fails with E2BIG; deploy-logs shows terminal escapes
as text unless --raw, and finds -n lines by reading the log backwards once."""
import errno
import io
import os
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from conftest import must_fail, run_tool, write
from uwsgi_deploy import logs

VALUE_LIMIT = 64 * 1024
REV = "0123456789ab"


@pytest.fixture
def home(world):
    """A deploy home with an app `app` (its repository's directory is what
    makes it one; no Emperor, nothing live): (environ, home)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "GIT_", "UWSGI_"))}
    environ["HOME"] = os.path.join(world, "h")
    os.makedirs(os.path.join(environ["HOME"], "app.git"))
    return environ, environ["HOME"]


def config_set(environ, name, stdin, timeout=60):
    """deploy-config app set NAME, its stdin bytes or an open file."""
    how = {"input": stdin} if isinstance(stdin, bytes) else {"stdin": stdin}
    return subprocess.run([os.path.join(os.path.dirname(__file__), "..", "bin", "deploy-config"), "app", "set", name],
                          capture_output=True, env=environ, timeout=timeout, **how)


# -- deploy-config ------------------------------------------------------------

def test_a_value_over_64_kib_is_refused_without_echo_and_changes_nothing(home):
    environ, root = home
    value = b"SECRETISH" + b"v" * 200_000   # 200 KB broke every later exec with E2BIG
    result = config_set(environ, "BIG", value + b"\n")
    must_fail(result, 1, f"deploy-config: BIG: the value on stdin is longer than the {VALUE_LIMIT} bytes")
    assert b"SECRETISH" not in result.stdout + result.stderr and len(result.stderr.splitlines()) == 1
    assert not os.path.exists(os.path.join(root, "app.env"))


def test_an_endless_stdin_is_refused_at_once(home):
    """A value is read up to the limit, never further: /dev/zero ends at once."""
    environ, root = home
    with open("/dev/zero", "rb") as zero:
        result = config_set(environ, "ENDLESS", zero, timeout=30)
    must_fail(result, 1, "deploy-config: ENDLESS: the value on stdin is longer than")
    assert not os.path.exists(os.path.join(root, "app.env"))


def config(environ, app, action, name, stdin):
    from uwsgi_deploy.appconfig import config as deploy_config
    deploy_config(app, action, name, environ=environ, stdin=stdin, out=io.StringIO())


def test_a_value_of_exactly_64_kib_is_kept_and_the_total_is_bounded(home):
    environ, root = home
    for name, value in [("EXACT", b"x" * VALUE_LIMIT + b"\n"), ("V2", b"y" * 60_000), ("V3", b"z" * 60_000)]:
        config(environ, "app", "set", name, io.BytesIO(value))   # as deploy-config reads stdin
    with open(os.path.join(root, "app.env")) as stream:
        assert "x" * VALUE_LIMIT + "'" in stream.read()
    result = config_set(environ, "V4", b"z" * 60_000 + b"\n")
    assert result.returncode == 0, result.stderr
    result = config_set(environ, "V5", b"w" * 60_000 + b"\n")
    line = must_fail(result, 1, f"deploy-config: the variables of {root}/app.env take ")
    assert line.endswith("more than 262144: every exec of the app (setup, deploy-run, uWSGI's reload) "
                         "would risk failing with E2BIG"), line
    names = subprocess.run([os.path.join(os.path.dirname(__file__), "..", "bin", "deploy-config"), "app"],
                           capture_output=True, text=True, env=environ, timeout=60).stdout.split()
    assert names == ["EXACT", "V2", "V3", "V4"]


def test_env_files_are_held_to_the_same_limits(world):
    ini = write(os.path.join(world, "uwsgi.ini"), "[uwsgi]\nmodule = app\n")
    env_file = write(os.path.join(world, "environment.sh"), "A=1\nBIG=" + "S" * 100_000 + "\n")
    result = run_tool("uwsgi-ini-expand", "--env", env_file, ini)
    must_fail(result, 1, f"uwsgi-ini-expand: {env_file}:2: BIG: the value is 100000 bytes, more than the "
                         f"{VALUE_LIMIT} a variable may hold")
    assert "SSSS" not in result.stderr
    many = write(os.path.join(world, "many.sh"), "".join(f"V{i}={'s' * 60_000}\n" for i in range(5)))
    must_fail(run_tool("uwsgi-ini-expand", "--env", many, ini), 1,
              f"uwsgi-ini-expand: the variables of {many} take ")


def test_the_bound_is_what_keeps_an_exec_from_e2big():
    """What the limits guard against, on this kernel: one 200 KB variable
    cannot be exec'd at all; the most the limits let through can."""
    base = dict(os.environ)
    with pytest.raises(OSError) as caught:
        subprocess.run(["/bin/true"], env=dict(base, BIG="x" * 200_000), timeout=30)
    assert caught.value.errno == errno.E2BIG
    at_the_bound = {f"V{i}": "x" * (VALUE_LIMIT - 16) for i in range(4)}
    assert subprocess.run(["/bin/true"], env=dict(base, **at_the_bound), timeout=30).returncode == 0


# -- deploy-logs --------------------------------------------------------------

@pytest.fixture
def live_log(home):
    """app's live link and its log (no Emperor needed to read it): (environ, log path)."""
    environ, root = home
    os.makedirs(os.path.join(root, "run"), exist_ok=True)
    os.makedirs(os.path.join(root, "log"), exist_ok=True)
    os.symlink(f"app-{REV}.socket", os.path.join(root, "run", "app.socket"))
    return environ, os.path.join(root, "log", f"app-{REV}.log")


HOSTILE_LOG = ("[pid: 1] GET /\x1b]2;owned\x07\x1b[2J\x1b[31m HTTP/1.1 404\n"
               "a C1 \u009b31m, a bidi \u202eevil\u202c, a tab\there, a CR\rhidden\n").encode() + b"bad \xff utf-8\n"


def test_logs_show_terminal_escapes_as_text_unless_raw(live_log):
    environ, log = live_log
    with open(log, "wb") as stream:
        stream.write(HOSTILE_LOG)
    shown = run_tool("deploy-logs", "app", env=environ, text=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.decode() == (
        "[pid: 1] GET /\\x1b]2;owned\\x07\\x1b[2J\\x1b[31m HTTP/1.1 404\n"
        "a C1 \\x9b31m, a bidi \\u202eevil\\u202c, a tab\there, a CR\\x0dhidden\nbad \ufffd utf-8\n")
    raw = run_tool("deploy-logs", "app", "--raw", env=environ, text=False)
    assert raw.returncode == 0 and raw.stdout == HOSTILE_LOG


class CountingFile(io.FileIO):
    """A log file that counts the bytes read from it."""
    read_bytes = 0

    def read(self, size=-1):
        data = super().read(size)
        CountingFile.read_bytes += len(data)
        return data


def test_n_reads_a_big_log_backwards_each_byte_at_most_once(live_log, monkeypatch):
    """16 MB of log whose lines are all at its start: -n 1000 must scan all of
    it for newlines, once (re-reading a growing tail read ~2 GB)."""
    environ, log = live_log
    with open(log, "wb") as stream:
        stream.write(b"first\nsecond\n" + b"." * (16 * 1024 * 1024) + b"\nlast\n")
    size = os.path.getsize(log)
    monkeypatch.setattr(logs, "open_log", lambda path: CountingFile(path, "rb"))
    CountingFile.read_bytes = 0
    out = io.BytesIO()
    logs.logs("app", lines=1000, environ=environ, out=out)
    assert out.getvalue() == open(log, "rb").read()
    assert CountingFile.read_bytes <= 2 * size + 1, CountingFile.read_bytes   # backwards once, then out once
    CountingFile.read_bytes = 0
    out = io.BytesIO()
    logs.logs("app", lines=1, environ=environ, out=out)
    assert out.getvalue() == b"last\n" and CountingFile.read_bytes <= 2 * 64 * 1024


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r\n", b"\r", b"\n\n"]), max_size=40), st.integers(0, 12),
       st.integers(1, 9))
def test_tail_start_is_the_last_n_lines_across_block_boundaries(parts, count, block):
    data = b"".join(parts)
    lines = data.split(b"\n")
    lines = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    expected = b"".join(lines[-count:]) if count else b""
    logs_block, logs.BLOCK = logs.BLOCK, block
    try:
        stream = io.BytesIO(data)
        assert data[logs.tail_start(stream, count):] == expected
    finally:
        logs.BLOCK = logs_block
