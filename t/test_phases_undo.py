"""deploy-version --undo (what a fleet's rollback and the next push's
recovery run on a host) and --until (a phase that arrives after its
controller's deadline changes nothing), on one host: a real Emperor, nginx
and git."""
import json
import re
import time

import pytest

from test_phases import live, phase, store

pytestmark = pytest.mark.emperor


def test_undo_puts_back_the_version_live_before_and_is_harmless_again(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    commit = store(server, "v2")
    rev = commit[:12]
    assert phase(server, "prepare", commit)[0] == 0
    assert phase(server, "commit", rev)[0] == 0
    assert live(server) == f"app-{rev}" and server.get("/").text == "v2"

    code, printed, err = phase(server, "undo", commit)
    assert code == 0, err
    assert printed == {"version": f"app-{rev}", "removed": False, "rolled_back_to": f"app-{v1}",
                       "live": f"app-{v1}"}
    assert "-----> Running setup" not in err and f"app-{v1} is live" in err
    assert live(server) == f"app-{v1}" and server.get("/").text == "v1"

    code, printed, err = phase(server, "undo", commit)            # again: nothing left to undo
    assert code == 0 and printed["rolled_back_to"] is None and printed["live"] == f"app-{v1}"
    assert live(server) == f"app-{v1}"


def test_undo_of_a_prepared_candidate_removes_it_and_leaves_the_live_version(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    commit = store(server, "v2")
    assert phase(server, "prepare", commit)[0] == 0
    code, printed, err = phase(server, "undo", commit)
    assert code == 0, err
    assert printed == {"version": f"app-{commit[:12]}", "removed": True, "rolled_back_to": None,
                       "live": f"app-{v1}"}
    server.wait_emperor_vassals([f"app-{v1}.ini"])
    assert server.get("/").text == "v1"


def test_a_phase_after_its_deadline_refuses_and_changes_nothing(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    commit = store(server, "v2")
    past = str(time.time() - 30)
    for name, rev in (("prepare", commit), ("commit", commit[:12]), ("undo", commit)):
        result = server.tool("deploy-version", f"--{name}", "app", rev, "--until", past)
        assert result.returncode == 1 and result.stdout == ""
        assert re.fullmatch(r"deploy-version: the fleet deploy's deadline passed \d+ s ago: its controller gave "
                            rf"up on this host, so the {name} does not run\n", result.stderr), result.stderr
    assert live(server) == f"app-{v1}" and server.app("app").version(commit[:12]).prepared_file
    status = json.loads(server.tool("deploy-status", "app", "--json").stdout)["apps"][0]
    assert [v["name"] for v in status["versions"]] == [f"app-{v1}"]
    future = str(time.time() + 600)
    result = server.tool("deploy-version", "--prepare", "app", commit, "--until", future)
    assert result.returncode == 0, result.stderr
    result = server.tool("deploy-version", "app", v1, "--until", future)
    assert result.returncode == 2 and "--until goes with a phase" in result.stderr
