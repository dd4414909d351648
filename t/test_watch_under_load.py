"""The post-switch watch with the DEFAULT settings, under load that fills
every worker: a fast request loop plus slow requests longer than the watch
window, on an app with two processes. A busy version is healthy; a broken
one is switched back without losing a request that reached it."""
import os
import threading

import pytest

from conftest import must_fail
from load import BUSY_INI, SLOW_SECONDS, BusyLoad, BusyWatcher, LoadLoop, SlowRequests
from uwsgi_deploy import waiting

pytestmark = [pytest.mark.emperor, pytest.mark.load]

# the default watch is 3 s: the version stays busy well past its end
LONGER_THAN_WATCH = 8


# two workers with one thread each, or with two threads each (then twice the
# slow requests fill them)
@pytest.mark.parametrize("ini, workers", [(BUSY_INI, 2), (BUSY_INI + "threads = 2\n", 4)],
                         ids=["processes", "threads"])
def test_healthy_busy_versions_are_never_refused(busy_server, ini, workers):
    server = busy_server
    versions = [f"v{n}" for n in range(1, 12)]
    server.commit_app(versions[0], extra={"uwsgi.ini": ini})
    assert server.push().returncode == 0
    with BusyLoad(server, versions, workers=workers) as load:
        for version in versions[1:]:
            server.commit_app(version, extra={"uwsgi.ini": ini})
            result = server.push()
            assert result.returncode == 0, result.stderr
            assert "watch done" in result.stderr
    load.assert_nothing_lost()
    assert load.fast.regressions == []     # no client ever went back to an older version
    assert server.get("/").text == versions[-1]


@pytest.mark.parametrize("ini, workers", [(BUSY_INI, 2), (BUSY_INI + "threads = 2\n", 4)],
                         ids=["processes", "threads"])
def test_a_watch_closing_on_busy_workers_waits_for_its_ping(busy_server, ini, workers):
    """The window closes while every worker of the new version is in a slow
    request (the push paused as its watch began, and slow requests longer
    than the window filled the version): the watch's /ping waits in the
    queue behind them, and the watch waits for its answer rather than
    calling a busy version hung. Chance decides this in the test above; here
    it is made to happen."""
    server = busy_server
    server.commit_app("v1", extra={"uwsgi.ini": ini})
    assert server.push().returncode == 0
    server.commit_app("v2", extra={"uwsgi.ini": ini})
    push = server.paused_push("watch")
    push.reached()
    assert server.get("/").text == "v2"    # switched: the watch is next
    slow = SlowRequests(server.url(f"/slow?{LONGER_THAN_WATCH}"), interval=3600, burst=workers,
                        max_requests=workers)
    busy = BusyWatcher(server.app("app"))
    with slow, busy:
        assert waiting.wait_until(lambda: busy.all_slow_samples > 0, 30), busy.summary()
        push.release()
        returncode, output = push.finish(120)
    assert returncode == 0, output
    assert "waits behind busy workers" in output
    assert "watch done" in output
    assert slow.errors == {} and slow.versions == {"v2": workers}, (slow.errors, slow.versions)
    assert server.get("/").text == "v2"


# /ping turns 500 as soon as this version has started a slow request: the
# watch sees it broken while that request (and queued ones) still run on it
PING_FAILS_ONCE_BUSY = '''import os
from app_base import application as base

FLAG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "served-slow")


def application(environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/ping" and os.path.exists(FLAG):
        start_response("500 Broken", [("Content-Type", "text/plain")])
        return [b"broken"]
    if path == "/slow":
        open(FLAG, "w").close()
    return base(environ, start_response)
'''

# each worker exits right after it has answered its first request (in the
# response's close(), once the answer is out): a crash that costs no request
# of its own, so every failure a client sees would be the deployer's
WORKER_EXITS_AFTER_ANSWERING = '''import os
from app_base import application as base


class ExitAfterAnswer:
    def __init__(self, body):
        self.body = body

    def __iter__(self):
        return iter(self.body)

    def close(self):
        os._exit(3)


def application(environ, start_response):
    body = base(environ, start_response)
    if environ.get("PATH_INFO") == "/ping":
        return body
    return ExitAfterAnswer(body)
'''


def commit_broken(server, version, app_py):
    server.commit_app(version)
    base = open(os.path.join(server.source_repo(), "app.py")).read()
    return server.commit({"app_base.py": base, "app.py": app_py, "uwsgi.ini": BUSY_INI})[:12]


def refused_and_switched_back(server, result, v1, v2, reason):
    must_fail(result, 1, "remote: pre-receive: watch: ")
    assert f"remote:  !     watch: {reason}" in result.stderr, result.stderr
    assert f"switched back to app-{v1}" in result.stderr
    assert f"letting app-{v2} finish the requests it accepted" in result.stderr
    assert os.readlink(server.app("app").live_socket) == f"app-{v1}.socket"
    server.wait_emperor_vassals([f"app-{v1}.ini"])
    assert server.vassal_inis() == [f"app-{v1}.ini"]
    assert not any(line.startswith(f"app-{v2}") for line in open(server.settings.log_file))


def slow_request_once_live(server, rev):
    """A thread that sends one slow request through nginx as soon as the
    version `rev` is live; its response lands in the returned dict."""
    answer = {}
    live_socket = server.app("app").live_socket

    def send():
        if waiting.wait_until(lambda: os.readlink(live_socket) == f"app-{rev}.socket", 60, interval=0.005):
            answer["response"] = server.get(f"/slow?{SLOW_SECONDS}", timeout=60)
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, answer


def test_ping_failing_after_switch_is_switched_back_losing_nothing(busy_server):
    server = busy_server
    v1 = server.commit_app("v1", extra={"uwsgi.ini": BUSY_INI})[:12]
    assert server.push().returncode == 0
    v2 = commit_broken(server, "v2", PING_FAILS_ONCE_BUSY)
    with BusyLoad(server, ["v1", "v2"]) as load:
        sender, slow_on_v2 = slow_request_once_live(server, v2)
        result = server.push()
        load.settle()
        sender.join(60)
    refused_and_switched_back(server, result, v1, v2, "GET /ping answered status 500 after going live")
    load.assert_nothing_lost()
    # a slow request reached the new version and completed there (the fast
    # loop's clients, queued behind v1's busy workers, may all miss the
    # moment v2 was live: its /ping fails at the watch's first look)
    assert (slow_on_v2["response"].status_code, slow_on_v2["response"].text) == (200, "v2")
    assert server.get("/").text == "v1"


def test_worker_dying_after_switch_is_switched_back_losing_nothing(busy_server):
    server = busy_server
    v1 = server.commit_app("v1", extra={"uwsgi.ini": BUSY_INI})[:12]
    assert server.push().returncode == 0
    v2 = commit_broken(server, "v2", WORKER_EXITS_AFTER_ANSWERING)
    with BusyLoad(server, ["v1", "v2"]) as load:
        result = server.push()
        load.settle()
    refused_and_switched_back(server, result, v1, v2, "worker ")
    assert "crashed and was respawned" in result.stderr
    load.assert_nothing_lost()
    assert load.fast.versions["v2"] > 0
    assert server.get("/").text == "v1"


# /ping stops answering (for 8 s) once the version has served a request
PING_HANGS_ONCE_SERVING = '''import os, time
from app_base import application as base

FLAG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "served")


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/ping":
        if os.path.exists(FLAG):
            time.sleep(8)
    else:
        open(FLAG, "w").close()
    return base(environ, start_response)
'''


def test_ping_hanging_for_the_probe_timeout_is_broken(busy_server):
    """The one case where waiting is a fault: no answer within
    DEPLOY_PROBE_TIMEOUT. The hung worker keeps the version busy past
    DEPLOY_DRAIN_TIMEOUT, so it is stopped gracefully anyway."""
    server = busy_server
    v1 = server.commit_app("v1", extra={"uwsgi.ini": BUSY_INI})[:12]
    assert server.push().returncode == 0
    v2 = commit_broken(server, "v2", PING_HANGS_ONCE_SERVING)
    with LoadLoop(server.url("/"), ["v1", "v2"], clients=2) as load:
        load.wait_for(50)
        result = server.push(extra_env={"DEPLOY_PROBE_TIMEOUT": "2", "DEPLOY_DRAIN_TIMEOUT": "1"})
        load.wait_for(load.total + 50)
    refused_and_switched_back(server, result, v1, v2, "GET /ping got no answer for 2 s (DEPLOY_PROBE_TIMEOUT)")
    assert f"app-{v2} still busy after 1 s; stopping it gracefully" in result.stderr
    assert load.errors == {} and set(load.statuses) == {200}, load.summary()
