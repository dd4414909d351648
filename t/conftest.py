"""Shared test worlds: short temporary directories, free ports, real uWSGI."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin")
APPS = os.path.join(ROOT, "t", "apps")
sys.path[:0] = [os.path.join(ROOT, "lib"), os.path.join(ROOT, "dev")]   # the library; the harness
UWSGI = shutil.which("uwsgi") or "/usr/bin/uwsgi"


@pytest.fixture
def world():
    """A fresh directory with a short path: unix socket paths must stay < 100 bytes."""
    path = tempfile.mkdtemp(prefix="ud-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


import sandbox_server  # noqa: E402
from sandbox_server import wait_until  # noqa: E402

write = sandbox_server.write   # the tests' (and dev's) file writer


def run_tool(name, *args, **kwargs):
    """Run bin/NAME from the checkout; returns CompletedProcess with text output."""
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run([os.path.join(BIN, name), *args], capture_output=True, **kwargs)


def _text(output):
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""


# A Python traceback a tool printed itself: at the start of a line, or of a
# line git relays from the server (`remote: `); never inside a quoted log tail.
TOOL_TRACEBACK = re.compile(r"^(remote: )?Traceback \(most recent call last\):", re.M)


def must_fail(result, status, line):
    """Like git's test_must_fail: result (a CompletedProcess) is a refusal,
    not a crash. It exited with `status` (a number; the exit status a
    signal gives is never one), a line of its stderr matches `line` (a
    substring, or a regular expression searched in the line), and no
    Traceback of a tool appears in stdout or stderr (an app's own traceback,
    quoted in the ` !` lines of its log's tail, is the refusal's evidence,
    not a crash). Returns the matching line."""
    stdout, stderr = _text(result.stdout), _text(result.stderr)
    shown = f"exit {result.returncode}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    assert not TOOL_TRACEBACK.search(stdout + stderr), f"a crash, not a refusal:\n{shown}"
    assert result.returncode == status, f"expected exit {status}:\n{shown}"
    pattern = line if isinstance(line, re.Pattern) else None
    for candidate in stderr.splitlines():
        if pattern is not None:
            if pattern.search(candidate):
                return candidate
        elif line in candidate or _search(line, candidate):
            return candidate
    raise AssertionError(f"no stderr line matches {line!r}:\n{shown}")


def _search(regex, text):
    try:
        return re.search(regex, text)
    except re.error:
        return None


# Tiers (pytest.ini, docs/testing.md): what a test needs is marked in its
# file. A test that uses one of these fixtures starts a real uWSGI: it is
# marked emperor even where its file forgot, so `make check` never runs it.
EMPEROR_FIXTURES = {"server", "busy_server", "uwsgi_runner"}


def keep_groups_together(config, items):
    """pytest-xdist's --dist loadgroup sends the tests of one xdist_group to
    one worker by suffixing their node ids with @GROUP; pytest 9 keeps node
    ids elsewhere, so xdist's suffix (item._nodeid) is lost and every worker
    would build its own fleet. Set it where pytest 9 reads it."""
    if not getattr(config.option, "loadgroup", False):   # set in the workers of a loadgroup run
        return
    from _pytest.nodeid import coerce_node_id
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        if marker is not None:
            name = marker.args[0] if marker.args else marker.kwargs.get("name", "default")
            if not item.nodeid.endswith(f"@{name}"):
                item._id = coerce_node_id(f"{item.nodeid}@{name}")


# The slowest first (make test): xdist (--dist loadgroup --no-loadscope-reorder)
# hands out units of work in the order of this list: a group's tests (one
# xdist_group, one worker, one world built once) or a single test. Each
# worker gets one unit, then, while its unit has at most two tests left, one
# more queued behind it. So the list is: one unit of the slowest kinds per
# worker (the fleet groups, then network, ssh, load: the benchmarks, the
# install tests, the account worlds), then one quick unit test per worker
# (what waits behind a long single test is a test of milliseconds), then
# the rest, slowest kinds first, bigger groups first within a kind.
SLOW_FIRST = ("fleet", "network", "ssh", "load", "emperor")


def xdist_group(item):
    marker = item.get_closest_marker("xdist_group")
    return marker and (marker.args[0] if marker.args else marker.kwargs.get("name", "default"))


def slowest_first(items, workers):
    def rank(item):
        return next((i for i, name in enumerate(SLOW_FIRST) if item.get_closest_marker(name)), len(SLOW_FIRST))

    units = {}
    for item in items:
        units.setdefault(xdist_group(item) or item.nodeid, []).append(item)
    ordered = sorted(units.values(), key=lambda unit: (min(map(rank, unit)), -len(unit)))
    if workers > 1:
        head, rest = ordered[:workers], ordered[workers:]
        quick = [unit for unit in rest if min(map(rank, unit)) == len(SLOW_FIRST)][:workers]
        ordered = head + quick + [unit for unit in rest if not any(unit is q for q in quick)]
    items[:] = [item for unit in ordered for item in unit]


def pytest_collection_modifyitems(config, items):
    keep_groups_together(config, items)
    for item in items:
        if EMPEROR_FIXTURES & set(item.fixturenames) and item.get_closest_marker("emperor") is None:
            item.add_marker(pytest.mark.emperor)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    slowest_first(items, workers)
    # each fleet group on a worker of its own (slowest_first sends them out
    # first, one per worker) when there are workers enough: only then is a
    # worker's last fleet test the last one that needs its world
    groups = {xdist_group(item) for item in items if "fleet_world" in item.fixturenames}
    global FLEET_WORLD_EARLY_STOP
    FLEET_WORLD_EARLY_STOP = workers > 1 and workers >= len(groups)


# TEST_TIMELINE=FILE: each test phase (setup, call, teardown) a line of FILE,
# `worker start end phase nodeid` (seconds since the epoch), to see which
# chain of tests ends a parallel run last, and after them a line
# `worker own reaped cpu nodeid` of the test's CPU seconds (docs/testing.md,
# "How long").
TIMELINE = os.environ.get("TEST_TIMELINE")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not TIMELINE:
        yield
        return
    phases = []
    item.stash[TIMELINE_KEY] = phases
    before = os.times()
    yield
    after = os.times()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    # CPU seconds of the worker itself (its load threads included) and of the
    # children it reaped in the test (tools, git, and at a world's end its
    # Emperor and nginx): what a test costs a CPU-bound run
    own = after.user + after.system - before.user - before.system
    reaped = after.children_user + after.children_system - before.children_user - before.children_system
    with open(TIMELINE, "a") as stream:
        stream.write("".join(f"{worker} {start:.2f} {end:.2f} {when} {item.nodeid}\n"
                             for when, start, end in phases))
        stream.write(f"{worker} {own:.2f} {reaped:.2f} cpu {item.nodeid}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield
    if TIMELINE and TIMELINE_KEY in item.stash:
        item.stash[TIMELINE_KEY].append((call.when, call.start, call.stop))


TIMELINE_KEY = pytest.StashKey()

NOWHERE = "/nonexistent/uwsgi-deploy-test"


def uwsgi_reads(ini_path, env=None):
    """[(key, value)]: the options a real uWSGI collects from ini_path, in
    order. It prints them (--show-config) and exits at once (its chdir to a
    missing directory fails) before it binds a socket or loads an app."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UWSGI_")}
    result = subprocess.run([UWSGI, "--ini", ini_path, "--show-config", "--chdir", NOWHERE],
                            capture_output=True, env=dict(environ, **(env or {})), timeout=30,
                            cwd=os.path.dirname(ini_path))
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    head, found, rest = output.partition(";uWSGI instance configuration\n[uwsgi]\n")
    assert found, output
    options = []
    for line in rest.partition(";end of configuration")[0].split("\n")[:-1]:
        equals = line.index("=")   # a key holds no '='; uWSGI prints `key = value`
        options.append((line[:equals - 1], line[equals + 2:]))
    for ours in (("ini", ini_path), ("show-config", "true"), ("chdir", NOWHERE)):   # the command line's
        options.remove(ours)
    return options


class Uwsgi:
    """A real uWSGI running one ini file, stopped by PID."""

    def __init__(self, ini_path, log_path):
        self.ini_path, self.log_path = ini_path, log_path
        self.process = subprocess.Popen([UWSGI, "--ini", ini_path, "--logto", log_path],
                                        stdin=subprocess.DEVNULL)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as stream:
                return stream.read()
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout=20):
        """Ready once the worker is spawned and the app is loaded (or failed)."""
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"uwsgi exited {self.process.returncode}:\n{self.log()}")
            return "spawned uWSGI worker 1" in self.log()
        wait_until(ready, timeout, f"uwsgi to start {self.ini_path}")
        return self

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)   # SIGTERM would make it reload
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def uwsgi_runner():
    """start(ini_path, log_path) -> Uwsgi; every instance is stopped afterwards."""
    started = []

    def start(ini_path, log_path):
        instance = Uwsgi(ini_path, log_path)
        started.append(instance)
        return instance.wait_ready()

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture(scope="session")
def stop_later():
    """stop_later(box): stop a sandbox's servers (by PID) and remove it, in
    the background. An Emperor takes about 3 s to stop: its vassals bury
    their gracefully stopped workers on their next one-second tick, and the
    Emperor notices on its own. The next test need not wait for that; the
    session waits for every stop before it ends."""
    stopping = []

    def stop(box):
        thread = threading.Thread(target=box.stop)
        thread.start()
        stopping.append(thread)
    yield stop
    for thread in stopping:
        thread.join(120)


@pytest.fixture
def sandbox(stop_later):
    from sandbox import Sandbox
    box = Sandbox()
    yield box
    stop_later(box)


@pytest.fixture
def server(sandbox):
    """A sandbox with the Emperor and nginx running and app `app` initialised."""
    sandbox.start_emperor()
    sandbox.deploy_init("app")
    sandbox.start_nginx(["app"])
    return sandbox


@pytest.fixture
def busy_server(server):
    """The test server with every setting at its default: the sandbox
    shortens the post-switch watch for tests that are not about it."""
    server.environ.pop("DEPLOY_WATCH", None)
    return server


@pytest.fixture(scope="session")
def fleet_world():
    """The three-host fleet (dev/fleet_world.py), built once per pytest
    process for the fleet test files it runs (building it takes a minute or
    more): each file's own `fleet` fixture sets what it needs and puts it
    back. Under `make test` the fleet tests are xdist groups of their own
    (test_fleet.py's "fleet-deploys", test_fleet_faults.py's "fleet",
    "fleet-b" and "fleet-c"), each on its own worker with its own world, so they run side
    by side; slowest_first sends every group of the `fleet` kind out first.
    (A worker that moved into a session of its own, for a share of the CPU
    beside every other worker's session under the kernel's autogroups, was
    tried: that run took 12 min 27 s, and so did the next ones without it,
    on a slow stretch of the machine; its effect is not known, so it is out.)"""
    from fleet_world import FleetWorld
    world = FleetWorld().build()
    stopping = threading.Thread(target=stop_fleet_world, args=(world,))
    FLEET_WORLD_STOPS.append(stopping)
    try:
        yield world
    finally:
        if stopping.ident is None:     # not started early (see pytest_runtest_teardown)
            stopping.start()
        stopping.join()


def stop_fleet_world(world):
    for host in world.hosts:
        host.heal()
    world.stop()


# A worker's fleet world stops, in the background, as soon as its last fleet
# test is over (under make test each fleet group is one unit of one worker,
# its tests in a row), not when the worker's session ends: stopping three
# hosts took up to a minute at the end of a loaded run, while the worker's
# other tests could already run. With fewer workers than fleet groups, a
# worker may run two groups apart: its world then stops when its session ends.
FLEET_WORLD_STOPS = []
FLEET_WORLD_EARLY_STOP = False   # set from the collection (pytest_collection_modifyitems)


def pytest_runtest_setup(item):
    if "fleet_world" in item.fixturenames and any(s.ident is not None for s in FLEET_WORLD_STOPS):
        pytest.fail("this worker's fleet world was stopped after the fleet tests before: "
                    "the tests on one world must run in a row (one xdist_group)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    if ("fleet_world" in item.fixturenames and FLEET_WORLD_STOPS and FLEET_WORLD_EARLY_STOP
            and (nextitem is None or "fleet_world" not in nextitem.fixturenames)):
        for stopping in FLEET_WORLD_STOPS:
            if stopping.ident is None:
                stopping.start()
