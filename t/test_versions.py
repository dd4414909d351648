"""Versions over time: deploy.log, rollback by rev prefix and --previous, --no-setup."""
import multiprocessing
import os

import pytest

from conftest import must_fail
from load import LoadLoop
from uwsgi_deploy.deploylog import append_entry, read_log
from uwsgi_deploy.layout import App
from uwsgi_deploy.settings import load


def log_of(server):
    return read_log(server.settings.log_file, "app")


def push_versions(server, *names, extra=None):
    revs = []
    for name in names:
        revs.append(server.commit_app(name, extra=extra)[:12])
        result = server.push()
        assert result.returncode == 0, result.stderr
    return revs


@pytest.mark.emperor
def test_deploy_log_records_pushes_deploy_version_and_rollbacks(server):
    commits = []
    for name in ("v1", "v2"):
        commits.append(server.commit_app(name))
        assert server.push().returncode == 0
    v1, v2 = (c[:12] for c in commits)
    assert server.tool("deploy-version", "app", v1[:6]).returncode == 0
    assert server.tool("deploy-version", "--previous", "app").returncode == 0
    entries = log_of(server)
    assert [(e.name, e.via, e.previous) for e in entries] == [
        (f"app-{v1}", "push", None),
        (f"app-{v2}", "push", f"app-{v1}"),
        (f"app-{v1}", "deploy-version", f"app-{v2}"),
        (f"app-{v2}", "rollback", f"app-{v1}"),
    ]
    # the full commit follows a version into later deploys of it
    assert [e.commit for e in entries] == [commits[0], commits[1], commits[0], commits[1]]
    assert all(float(e.fields["seconds"]) > 0 for e in entries)
    with open(server.settings.log_file) as stream:
        first = stream.readline()
    # the seed's format first: name, date, time
    name, date, clock = first.split()[:3]
    assert name == f"app-{v1}" and len(date) == 10 and len(clock) == 8


def _append_many(path, home, count):
    settings = load({"HOME": home})
    version = App(settings, "app").version("0123456789ab")
    for _ in range(count):
        append_entry(path, version, "f" * 40, "push", 1.5, version)


def test_concurrent_appends_never_interleave(world):
    path = os.path.join(world, "deploy.log")
    workers = [multiprocessing.Process(target=_append_many, args=(path, world, 300)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    with open(path) as stream:
        lines = stream.read().splitlines()
    assert len(lines) == 1200
    assert len(read_log(path)) == 1200     # every line parses whole


@pytest.mark.emperor
@pytest.mark.load
def test_rollback_by_prefix_and_previous_under_load_loses_nothing(server):
    v1, v2 = push_versions(server, "v1", "v2")
    with LoadLoop(server.url("/"), ["v1", "v2"], clients=4) as load:
        load.wait_for(50)
        result = server.tool("deploy-version", "app", v1[:7])
        assert result.returncode == 0, result.stderr
        assert server.get("/").text == "v1"
        load.wait_for(load.total + 50)
        result = server.tool("deploy-version", "--previous", "app")
        assert result.returncode == 0, result.stderr
        assert server.get("/").text == "v2"
        load.wait_for(load.total + 50)
    print("rollback under load:", load.summary())
    assert load.errors == {} and set(load.statuses) == {200}
    assert server.vassal_inis() == [f"app-{v2}.ini"]


@pytest.mark.emperor
def test_unknown_or_ambiguous_prefix_lists_candidates(server):
    revs = push_versions(server, "v1", "v2", "v3")
    result = server.tool("deploy-version", "app", "zz")
    must_fail(result, 1, r"^deploy-version: no version of app matches 'zz' \(on disk: ")
    assert all(f"app-{rev}" in result.stderr for rev in revs)
    common = os.path.commonprefix(revs)
    result = server.tool("deploy-version", "app", common)   # "" matches all three
    must_fail(result, 1, "^deploy-version: .*is ambiguous: ") and all(rev in result.stderr for rev in revs)
    assert server.get("/").text == "v3"


@pytest.mark.emperor
def test_previous_without_history_is_an_error(server):
    push_versions(server, "v1")
    result = server.tool("deploy-version", "--previous", "app")
    assert result.returncode == 1
    assert result.stderr == "deploy-version: deploy.log names no version of app before the live one\n"


@pytest.mark.emperor
def test_no_setup_skips_setup(server):
    setup = "#!/bin/sh\necho ran >> \"$HOME/setup-runs\"\n"
    v1, v2 = push_versions(server, "v1", "v2", extra={"setup": setup})
    runs = os.path.join(server.home, "setup-runs")
    assert open(runs).read().count("ran") == 2
    result = server.tool("deploy-version", "--no-setup", "app", v1)
    assert result.returncode == 0, result.stderr
    assert "Skipping setup" in result.stderr
    assert open(runs).read().count("ran") == 2
    assert server.get("/").text == "v1"
    assert server.tool("deploy-version", "app", v2).returncode == 0
    assert open(runs).read().count("ran") == 3
