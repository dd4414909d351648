"""deploy-cleanup against a real Emperor and nginx: what it keeps, what it
removes, and that the live app keeps serving."""
import json
import os

import pytest

from conftest import must_fail, write
from sandbox import wait_file
from uwsgi_deploy.inventory import versions_on_disk
from uwsgi_deploy.lock import DeployLock

FAILING_SETUP = {"setup": "#!/bin/sh\necho broken >&2\nexit 1\n"}


def push_versions(server, count, app="app", repo=None, prefix="v"):
    """Push count versions; returns their revs, oldest first."""
    revs = []
    for number in range(1, count + 1):
        revs.append(server.commit_app(f"{prefix}{number}", repo=repo)[:12])
        result = server.push(app=app, repo=repo)
        assert result.returncode == 0, result.stderr
    return revs


def on_disk(server, app="app"):
    return sorted(v.rev for v in versions_on_disk(server.app(app)))


def snapshot(server):
    """Every name under the deploy home (versions, logs, sockets, vassals)."""
    found = set()
    for top, dirs, files in os.walk(server.home):
        dirs[:] = [d for d in dirs if not d.endswith(".git")]
        found.update(os.path.relpath(os.path.join(top, name), server.home) for name in dirs + files)
    return found


def cleanup(server, *args):
    result = server.tool("deploy-cleanup", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


@pytest.mark.emperor
def test_default_keeps_the_four_most_recent_of_each_app(server):
    revs = push_versions(server, 8)
    server.deploy_init("other")
    src2 = server.source_repo("src2")
    other = push_versions(server, 6, app="other", repo=src2, prefix="o")
    app = server.app("app")
    log, run = server.settings.log_dir, server.settings.run_dir
    # what an old version and interrupted deploys leave behind
    old = app.version(revs[0])
    assert os.path.exists(old.log)
    write(old.socket, "")
    write(old.stats_socket, "")
    write(os.path.join(log, "app-aaaaaaaaaaaa.log"), "a version whose directory is gone\n")
    os.makedirs(os.path.join(server.home, f".app-{revs[1]}.tmp-99999", "half"))
    write(os.path.join(server.home, f".app-{revs[1]}.tmp-99999.tar"), "")
    before = snapshot(server)

    # --dry-run: lists, removes nothing
    lines = cleanup(server, "--dry-run")
    assert snapshot(server) == before
    assert not [line for line in lines if line.startswith("removed")]
    for rev in revs[:4]:
        assert f"would remove app-{rev}: older than the 4 most recent" in lines
    assert "would remove app-aaaaaaaaaaaa: its log and sockets (the version is no longer on disk)" in lines
    assert f"would remove .app-{revs[1]}.tmp-99999: half checkout left by an interrupted deploy" in lines
    assert f"kept app-{revs[7]}: live" in lines
    assert f"kept app-{revs[6]}: previous (rollback target)" in lines
    assert f"kept app-{revs[5]}: among the 4 most recent" in lines
    assert f"would remove other-{other[1]}: older than the 4 most recent" in lines

    lines = cleanup(server)
    assert on_disk(server) == sorted(revs[4:])
    assert on_disk(server, "other") == sorted(other[2:])
    assert [line for line in lines if line.startswith("kept app-")] == [
        f"kept app-{revs[7]}: live", f"kept app-{revs[6]}: previous (rollback target)",
        f"kept app-{revs[5]}: among the 4 most recent", f"kept app-{revs[4]}: among the 4 most recent"]
    for rev in revs[:4]:
        assert f"removed app-{rev}: older than the 4 most recent" in lines
        assert not os.path.exists(os.path.join(log, f"app-{rev}.log"))
    for rev in revs[4:]:
        assert os.path.exists(os.path.join(log, f"app-{rev}.log"))
    assert not os.path.exists(old.socket) and not os.path.exists(old.stats_socket)
    assert not os.path.exists(os.path.join(log, "app-aaaaaaaaaaaa.log"))
    assert not [n for n in os.listdir(server.home) if ".tmp-" in n]
    assert not [line for line in lines if line.startswith("would")]
    # the live version still has its vassal and socket, and serves through nginx
    assert server.vassal_inis() == [f"app-{revs[7]}.ini", f"other-{other[5]}.ini"]
    assert os.path.exists(os.path.join(run, f"app-{revs[7]}.socket"))
    assert server.get("/").text == "v8"

    # idempotent: a second run removes nothing
    after = snapshot(server)
    lines = cleanup(server)
    assert snapshot(server) == after
    assert not [line for line in lines if not line.startswith("kept ")]

    # N=0 keeps exactly the live and the previous version; --app limits it
    lines = cleanup(server, "0", "--app", "other")
    assert on_disk(server, "other") == sorted(other[4:])
    assert on_disk(server) == sorted(revs[4:])
    assert f"removed other-{other[2]}: old, and N is 0" in lines
    assert lines and all(" other-" in line for line in lines)
    cleanup(server, "0")
    assert on_disk(server) == sorted(revs[6:])
    assert server.get("/").text == "v8"


@pytest.mark.emperor
def test_failed_deploy_and_versions_with_a_vassal(server):
    revs = push_versions(server, 4)
    app = server.app("app")
    failed = server.commit_app("broken", extra=FAILING_SETUP)[:12]
    must_fail(server.push(), 1, "remote: pre-receive: setup: setup exited with status 1")
    assert os.path.isdir(app.version(failed).workdir)     # the refused push left its checkout
    # a version the Emperor runs (not live, not previous) must stay, whatever N
    first = app.version(revs[0])
    write(first.vassal_ini, f"[uwsgi]\nmaster = true\nsocket = {first.socket}\n"
                            f"chdir = {first.workdir}\nwsgi-file = app.py\n", 0o600)
    server.wait_emperor_vassals([f"app-{revs[0]}.ini", f"app-{revs[3]}.ini"])
    wait_file(first.socket)

    lines = cleanup(server, "0")
    assert f"removed app-{failed}: failed deploy" in lines
    assert f"kept app-{revs[0]}: has a vassal" in lines
    assert f"removed app-{revs[1]}: old, and N is 0" in lines
    assert on_disk(server) == sorted([revs[0], revs[2], revs[3]])
    assert os.path.exists(first.socket)                  # a running vassal keeps its socket

    os.unlink(first.vassal_ini)
    server.wait_emperor_vassals([f"app-{revs[3]}.ini"])
    lines = cleanup(server, "0")
    assert f"removed app-{revs[0]}: old, and N is 0" in lines
    assert on_disk(server) == sorted(revs[2:])
    assert server.get("/").text == "v4"


@pytest.mark.emperor
def test_version_being_deployed_survives_while_the_lock_is_held(server):
    revs = push_versions(server, 2)
    app = server.app("app")
    busy = app.version("0123456789ab")
    write(os.path.join(busy.workdir, "app.py"), "# checked out, not yet deployed\n")
    half = os.path.join(server.home, ".app-0123456789ab.tmp-4242")
    os.makedirs(half)
    with DeployLock(app.lock_file, 1, "app-0123456789ab (push)"):
        lines = cleanup(server, "0")
        assert "kept app-0123456789ab: being deployed" in lines
        assert os.path.isdir(busy.workdir) and os.path.isdir(half)
        status = server.tool("deploy-status", "--json")
        assert status.returncode == 0, status.stderr
        [facts] = json.loads(status.stdout)["apps"]
        assert facts["deploying"] == "app-0123456789ab"
        assert [v["marks"] for v in facts["versions"] if v["name"] == "app-0123456789ab"] == [["deploying"]]
    lines = cleanup(server, "0")
    assert "removed app-0123456789ab: failed deploy" in lines
    assert not os.path.exists(busy.workdir) and not os.path.exists(half)
    assert on_disk(server) == sorted(revs)


@pytest.mark.emperor
def test_a_real_push_in_progress_keeps_its_candidate(server):
    revs = push_versions(server, 2)
    candidate = server.commit_app("v3")[:12]
    push = server.paused_push("switch")
    try:
        push.reached()       # the candidate runs on its socket; the switch waits
        lines = cleanup(server, "0")
        assert f"kept app-{candidate}: being deployed" in lines
        assert f"kept app-{revs[1]}: live" in lines
        assert f"kept app-{revs[0]}: previous (rollback target)" in lines
    finally:
        push.release()
    status, output = push.finish()
    assert status == 0, output
    assert server.get("/").text == "v3"
    cleanup(server, "0")
    assert on_disk(server) == sorted([revs[1], candidate])


def test_bad_input_is_a_one_line_error(sandbox):
    sandbox.deploy_init("app")
    for args, message in ((["-1"], "N must be 0 or more, not -1"),
                          (["many"], "N must be a whole number, not 'many'"),
                          (["--app", "nope"], "no app 'nope' in ")):
        result = sandbox.tool("deploy-cleanup", *args)
        assert must_fail(result, 1, "deploy-cleanup: " + message).startswith("deploy-cleanup: ")
        assert result.stderr.count("\n") == 1


@pytest.mark.emperor
def test_a_refused_first_push_is_a_failed_deploy_until_the_log_is_lost(server):
    """An app that never went live has only failed deploys; one that went
    live but lost deploy.log ranks its versions by directory time."""
    failed = server.commit_app("broken", extra=FAILING_SETUP)[:12]
    must_fail(server.push(), 1, "remote: pre-receive: setup: setup exited with status 1")
    assert f"would remove app-{failed}: failed deploy" in cleanup(server, "--dry-run")
    [facts] = json.loads(server.tool("deploy-status", "--json", "app").stdout)["apps"]
    assert [v["marks"] for v in facts["versions"]] == [["failed"]]
    live = server.commit_app("v1", extra={"setup": None})[:12]
    assert server.push().returncode == 0
    os.unlink(server.settings.log_file)
    lines = cleanup(server, "--dry-run", "1")
    assert lines == [f"kept app-{live}: live", f"would remove app-{failed}: older than the most recent"]
