"""The watch judges real traffic, with the DEFAULT settings, under load that
fills every worker at times (t/load.py BusyLoad: a fast loop on `/`, slow
requests on /slow that outlast the watch): a version with 5% 500s, or three
times slower, on a real path is switched back, losing nothing beyond the
500s it served itself; healthy versions under the same load go live."""
import os

import pytest

from load import BUSY_INI, BusyLoad
from test_watch_under_load import commit_broken, refused_and_switched_back

pytestmark = [pytest.mark.emperor, pytest.mark.load]

def failing_one_in(every):
    """An app whose / answers 500 once in `every` requests (each worker
    counts its own); /ping and every other path are fine."""
    return f'''from app_base import application as base

served = 0


def application(environ, start_response):
    global served
    if environ.get("PATH_INFO") == "/":
        served += 1
        if served % {every} == 0:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"error"]
    return base(environ, start_response)
'''


FIVE_PERCENT_500 = failing_one_in(20)

# / takes DELAY seconds of work before it answers
DELAYED = '''import time
from app_base import application as base


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/":
        time.sleep({delay})
    return base(environ, start_response)
'''


def statuses_in_log(server, rev, status):
    with open(os.path.join(server.settings.log_dir, f"app-{rev}.log"), errors="replace") as stream:
        return sum(1 for line in stream if line.startswith("ud-req ") and line.split()[2] == str(status))


def test_five_percent_500s_on_a_real_path_is_switched_back(busy_server):
    server = busy_server
    v1 = server.commit_app("v1", extra={"uwsgi.ini": BUSY_INI})[:12]
    assert server.push().returncode == 0
    v2 = commit_broken(server, "v2", FIVE_PERCENT_500)
    with BusyLoad(server, ["v1", "v2"]) as load:
        result = server.push()
        load.settle()
    print(result.stderr)
    refused_and_switched_back(server, result, v1, v2, "5xx ")
    assert "% before (" in result.stderr
    # what clients saw: 200s, and exactly the 500s v2 answered itself
    served_500 = statuses_in_log(server, v2, 500)
    print(load.fast.summary(), f"v2 answered {served_500} 500s")
    assert set(load.fast.statuses) <= {200, 500} and load.fast.statuses[500] == served_500 > 0
    assert load.fast.errors == {}
    assert load.slow.errors == {} and set(load.slow.statuses) == {200}, load.slow.summary()
    assert server.get("/").text == "v1"


def test_three_times_slower_on_a_real_path_is_switched_back(busy_server):
    server = busy_server
    v1 = commit_broken(server, "v1", DELAYED.format(delay=0.015))
    assert server.push().returncode == 0
    v2 = commit_broken(server, "v2", DELAYED.format(delay=0.045))
    with BusyLoad(server, ["v1", "v2"]) as load:
        result = server.push()
        load.settle()
    print(result.stderr)
    refused_and_switched_back(server, result, v1, v2, "slower: / p")
    load.assert_nothing_lost()
    assert load.fast.versions["v2"] > 0
    assert server.get("/").text == "v1"


def test_healthy_versions_under_the_same_load_go_live_judged_on_their_traffic(busy_server):
    """Several pushes of a healthy version whose / does a little work, under
    the load that fills every worker: each is judged on its traffic (enough
    requests) and goes live."""
    server = busy_server
    versions = [f"v{n}" for n in range(1, 6)]
    commit_broken(server, versions[0], DELAYED.format(delay=0.005))
    assert server.push().returncode == 0
    with BusyLoad(server, versions) as load:
        for version in versions[1:]:
            commit_broken(server, version, DELAYED.format(delay=0.005))
            result = server.push()
            assert result.returncode == 0, result.stderr
            traffic = [line for line in result.stderr.splitlines() if "remote:        traffic: " in line]
            print(traffic)
            assert len(traffic) == 1 and "traffic: 5xx 0.0% (" in traffic[0], result.stderr
    load.assert_nothing_lost()
    assert server.get("/").text == versions[-1]
