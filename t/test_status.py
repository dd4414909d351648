"""deploy-status against a live Emperor: what is live, whether it answers,
the versions on disk and the last deploys."""
import json
import os

import pytest

from conftest import must_fail

FAILING_SETUP = {"setup": "#!/bin/sh\nexit 1\n"}


def log_entries(server):
    with open(server.settings.log_file) as stream:
        return [line.split() for line in stream]


def status(server, *args):
    result = server.tool("deploy-status", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


@pytest.mark.emperor
def test_status_of_an_app_with_three_deploys(server):
    commits = []
    for version in ("v1", "v2", "v3"):
        commits.append(server.commit_app(version))
        assert server.push().returncode == 0
    revs = [c[:12] for c in commits]
    failed = server.commit_app("broken", extra=FAILING_SETUP)[:12]
    must_fail(server.push(), 1, "remote: pre-receive: setup: setup exited with status 1")
    entries = log_entries(server)
    since = " ".join(entries[-1][1:3])

    facts = json.loads(status(server, "--json"))
    [app] = facts["apps"]
    assert app["name"] == "app"
    assert app["live"] == f"app-{revs[2]}"
    assert app["live_since"] == since
    assert (app["answers_ping"], app["ping_seen"]) == (True, "status 200")
    assert app["versions"] == [
        {"name": f"app-{revs[2]}", "marks": ["live"], "last_deployed": since, "venv": None},
        {"name": f"app-{revs[1]}", "marks": ["previous"], "last_deployed": " ".join(entries[1][1:3]), "venv": None},
        {"name": f"app-{revs[0]}", "marks": [], "last_deployed": " ".join(entries[0][1:3]), "venv": None},
        {"name": f"app-{failed}", "marks": ["failed"], "last_deployed": None, "venv": None}]
    assert app["recent"] == [
        {"version": f"app-{rev}", "time": " ".join(entry[1:3]), "via": "push", "commit": commit}
        for rev, entry, commit in reversed(list(zip(revs, entries, commits)))]

    text = status(server)
    lines = text.splitlines()
    assert lines[0] == "app"
    assert f"  live      app-{revs[2]} since {since}" in lines
    assert f"  ping      up: GET /ping on {server.app('app').live_socket}" in lines
    assert any(line.endswith(f"app-{revs[2]}  {since}  live") for line in lines)
    assert any(line.endswith(f"app-{revs[1]}  {' '.join(entries[1][1:3])}  previous") for line in lines)
    assert any(line.endswith(f"app-{failed}  never deployed       failed") for line in lines)
    deploys = [line.split() for line in lines if line.strip().endswith("  push")]
    assert [d[-2] for d in deploys] == [f"app-{rev}" for rev in reversed(revs)]
    assert status(server, "app") == text


@pytest.mark.emperor
def test_status_says_down_when_the_live_vassal_is_gone(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    server.deploy_init("other")
    src2 = server.source_repo("src2")
    server.commit_app("o1", repo=src2)
    assert server.push(app="other", repo=src2).returncode == 0
    app = server.app("app")
    live = app.live_version()
    os.unlink(live.vassal_ini)
    server.wait_emperor_vassals([os.path.basename(server.app("other").live_version().vassal_ini)])

    facts = json.loads(status(server, "--json"))
    by_name = {a["name"]: a for a in facts["apps"]}
    assert sorted(by_name) == ["app", "other"]
    assert by_name["app"]["live"] == live.name
    assert by_name["app"]["answers_ping"] is False
    assert by_name["app"]["ping_seen"] in ("no socket", "refused")
    assert by_name["other"]["answers_ping"] is True

    text = status(server, "app")
    assert f"  ping      down ({by_name['app']['ping_seen']}): GET /ping" in text
    assert "other" not in text


def test_unknown_app_is_an_error(sandbox):
    sandbox.deploy_init("app")
    result = sandbox.tool("deploy-status", "nope")
    must_fail(result, 1, "deploy-status: no app 'nope'")
    assert result.stdout == ""
    assert result.stderr == f"deploy-status: no app 'nope' in {sandbox.home} (no nope.git, no nope-<rev> directory)\n"
