"""Canary deploys (git push -o canary) with the real Emperor and the nginx
site deploy-init prints, at its default share (DEPLOY_CANARY_SHARE, 10%),
under a loop of clients from 400 loopback addresses: the canary answers
about the share of the requests, each client stays on its side, promotion
loses nothing; a canary with 500s, or one aborted by hand, ends with every
client back on the live version, losing nothing beyond the 500s it served."""
import os
import time

import pytest

from conftest import run_tool
from load import AddressedLoad
from sandbox import RunningPush
from test_traffic_under_load import failing_one_in, statuses_in_log

pytestmark = [pytest.mark.emperor, pytest.mark.load]

FAILING_ONE_IN_FIVE = failing_one_in(5)


def push_with_options(server, *options):
    argv = ["git", "-C", server.source_repo(), "push", "--force"]
    for option in options:
        argv += ["-o", option]
    return RunningPush(argv + [os.path.join(server.home, "app.git"), "main"], server.environ)


def canary_answers(load, push, start_line, end_line):
    """{address: answers} while the canary ran: between the push's two lines."""
    push.wait_for_output(start_line)
    start = time.monotonic() + 0.3   # the link is switched right after the stage line
    push.wait_for_output(end_line, timeout=120)
    end = time.monotonic() - 0.3
    return load.answers_between(start, end)


def test_a_canary_takes_its_share_of_clients_and_is_promoted_losing_nothing(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    server.commit_app("v2")
    with AddressedLoad(server.url("/"), addresses=400) as load:
        load.wait_for(200)
        push = push_with_options(server, "canary=5")
        during = canary_answers(load, push, "-----> Canary: ", "canary passed: ")
        status, output = push.finish()
        load.wait_every_address(since=time.monotonic())
    print(output)
    assert status == 0, output
    assert "canary 0 of 5 s, share 10%: app-" in output
    assert server.get("/").text == "v2"
    # each client stayed on its side; the canary's side is about the share
    answers = [a for seen in during.values() for a in seen]
    assert set(answers) == {"v1", "v2"}, set(answers)
    mixed = [address for address, seen in during.items() if len(set(seen)) > 1]
    assert mixed == [], mixed
    share = answers.count("v2") / len(answers)
    print(f"canary share {share:.3f} of {len(answers)} requests from {len(during)} addresses")
    assert 0.05 <= share <= 0.15
    # then every client moved on to v2 and none went back
    for seen in load.seen.values():
        versions = [a for _, a in seen]
        assert versions[-1] == "v2" and "v1" not in versions[versions.index("v2"):], versions
    assert load.errors == {} and set(load.statuses) == {200}, load.summary()


def test_a_failing_canary_and_one_aborted_by_hand_leave_the_live_version_losing_nothing(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    base = open(os.path.join(server.source_repo(), "app.py")).read()
    server.commit_app("v2")
    bad = server.commit({"app_base.py": base.replace('"v1"', '"v2"'), "app.py": FAILING_ONE_IN_FIVE})[:12]
    with AddressedLoad(server.url("/"), addresses=400) as load:
        load.wait_for(200)
        push = push_with_options(server, "canary=60")
        status, output = push.finish()
        print(output)
        assert status != 0 and "remote:  !     canary: 5xx " in output, output
        assert f"the canary is over: every client is back on app-{v1}" in output
        assert f"letting app-{bad} finish the requests it accepted" in output
        assert server.get("/").text == "v1"
        served_500 = statuses_in_log(server, bad, 500)

        good = server.commit_app("v3")[:12]
        push = push_with_options(server, "canary")   # DEPLOY_CANARY unset: 60 s
        push.wait_for_output("canary 0 of 60 s", timeout=120)   # as long as the first push may take
        shown = run_tool("deploy-status", "app", env=server.environ)
        assert f"  canary    app-{good}: " in shown.stdout and "10% of clients" in shown.stdout, shown.stdout
        aborted = run_tool("deploy-version", "--abort", "app", good[:7], env=server.environ)
        assert aborted.returncode == 0, aborted.stderr
        assert f"the canary of app-{good} is over" in aborted.stderr
        status, output = push.finish()
        assert status != 0 and "remote:  !     canary: aborted by hand (deploy-version --abort)" in output, output
        load.wait_for(load.total + 200)
    assert server.get("/").text == "v1" and os.readlink(server.app("app").canary_link) == f"app-{v1}.socket"
    print(load.summary(), f"the failing canary answered {served_500} 500s")
    assert load.errors == {} and set(load.statuses) <= {200, 500}, load.summary()
    assert load.statuses[500] == served_500 > 0
