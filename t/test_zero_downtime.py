"""No request lost: continuous traffic through nginx across deploys."""
import threading
import time

import pytest

from conftest import wait_until
from load import LoadLoop
from uwsgi_deploy.stats import read_stats

pytestmark = [pytest.mark.emperor, pytest.mark.load]


@pytest.mark.parametrize("probe_via", ["http", "socket"])
def test_three_deploys_under_load_lose_nothing(server, probe_via):
    server.environ["DEPLOY_PROBE_VIA"] = probe_via
    server.commit_app("v1")
    assert server.push().returncode == 0
    order = ["v1", "v2", "v3", "v4"]
    with LoadLoop(server.url("/"), order, clients=4) as load:
        load.wait_for(50)
        for version in order[1:]:
            server.commit_app(version)
            before = load.total
            result = server.push()
            assert result.returncode == 0, result.stderr
            # the push returns once the new version serves: the very next request sees it
            assert server.get("/").text == version
            load.wait_for(before + 50)
    print("zero-downtime:", load.summary())
    assert load.errors == {}
    assert set(load.statuses) == {200}
    assert load.regressions == []
    assert all(load.versions[v] > 0 for v in order)
    assert load.total > 200


def test_slow_request_on_old_version_completes(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    v2 = server.commit_app("v2")[:12]
    push = server.paused_push("switch")
    push.reached()                      # v2 is ready; the switch is next
    slow = {}
    started = time.monotonic()
    client = threading.Thread(target=lambda: slow.update(response=server.get("/slow", params="3")))
    client.start()
    stats_socket = server.app("app").version(v1).stats_socket

    def v1_busy():
        stats = read_stats(stats_socket) or {}
        return any(w.get("status") == "busy" for w in stats.get("workers", []))
    wait_until(v1_busy, 10, "the slow request to reach v1")
    push.release()                      # let the deploy switch and retire v1
    status, output = push.finish()
    client.join(60)
    assert status == 0, output
    assert (slow["response"].status_code, slow["response"].text) == (200, "v1")
    assert time.monotonic() - started >= 3
    assert server.get("/").text == "v2"
    assert server.vassal_inis() == [f"app-{v2}.ini"]
