"""The two phases of a deploy on one host (deploy-version --prepare, --commit,
--abort): what a fleet deploy runs on every host. A real Emperor, nginx and
git; the commit reaches the bare repository as a fleet deploy sends it, under
refs/fleet/candidate, which deploys nothing by itself."""
import json
import os

import pytest

from uwsgi_deploy.inventory import is_prepared
from uwsgi_deploy.probe import probe_once

pytestmark = pytest.mark.emperor


def store(server, version, extra=None):
    """Commit version and push it under the fleet ref; returns the commit."""
    commit = server.commit_app(version, extra=extra)
    result = server.push(refspec="main:refs/fleet/candidate")
    assert result.returncode == 0, result.stderr
    assert f"stored {commit[:12]} for a fleet deploy (refs/fleet/candidate" in result.stderr
    return commit


def phase(server, name, rev, app="app"):
    """(returncode, the JSON it printed or None, stderr)."""
    result = server.tool("deploy-version", f"--{name}", app, rev)
    printed = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, printed, result.stderr


def live(server):
    version = server.app("app").live_version()
    return version.run_name if version else None


def deploy_log(server):
    try:
        with open(server.settings.log_file) as stream:
            return stream.read().splitlines()
    except FileNotFoundError:
        return []


def test_prepare_leaves_a_candidate_that_takes_no_traffic_and_commit_makes_it_live(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    commit = store(server, "v2")
    rev = commit[:12]
    assert live(server) == f"app-{v1}" and server.get("/").text == "v1"   # the fleet ref deployed nothing

    code, printed, err = phase(server, "prepare", commit)
    assert code == 0, err
    assert printed == {"version": f"app-{rev}", "prepared": True, "live": f"app-{v1}", "live_rev": v1}
    assert f"app-{rev} is prepared" in err and "-----> Running setup" not in err
    for stage in ("Checking out", "Reading environment", "Expanding uwsgi.ini", "Probing"):
        assert f"-----> {stage}" in err
    assert "Switching" not in err
    # it runs and answers on its own socket; nginx still sends everything to v1
    version = server.app("app").version(rev)
    assert is_prepared(version)
    assert probe_once("unix:" + version.socket, "/ping").ok
    assert all(server.get("/").text == "v1" for _ in range(20))
    status = json.loads(server.tool("deploy-status", "app", "--json").stdout)["apps"][0]
    assert [v["marks"] for v in status["versions"] if v["name"] == f"app-{rev}"] == [["prepared"]]

    # a prefix of the rev finds it again, from another process
    code, printed, err = phase(server, "commit", rev[:7])
    assert code == 0, err
    assert printed == {"version": f"app-{rev}", "switched": True, "previous": f"app-{v1}", "previous_rev": v1}
    assert f"app-{rev} is live" in err
    assert live(server) == f"app-{rev}" and server.get("/").text == "v2"
    assert not os.path.exists(version.prepared_file)
    server.wait_emperor_vassals([f"app-{rev}.ini"])          # v1 retired
    last = deploy_log(server)[-1]
    assert last.startswith(f"app-{rev} ") and f"commit={commit}" in last and "via=fleet" in last
    assert f"previous=app-{v1}" in last

    # again: nothing to do, and it says so
    code, printed, err = phase(server, "commit", rev)
    assert (code, printed["switched"]) == (0, False) and "is already live" in err
    code, printed, err = phase(server, "prepare", commit)
    assert (code, printed["prepared"]) == (0, False) and "is already live" in err
    assert len(deploy_log(server)) == 2


def test_abort_removes_the_candidate_and_never_the_live_version(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    commit = store(server, "v2")
    rev = commit[:12]
    assert phase(server, "prepare", commit)[0] == 0
    version = server.app("app").version(rev)
    code, printed, err = phase(server, "abort", commit)
    assert code == 0, err
    assert printed == {"version": f"app-{rev}", "removed": True, "live": f"app-{v1}"}
    assert f"aborted: app-{rev}'s candidate is removed" in err
    assert not os.path.exists(version.prepared_file) and not os.path.exists(version.vassal_ini)
    server.wait_emperor_vassals([f"app-{v1}.ini"])
    assert not os.path.exists(version.socket)
    assert server.get("/").text == "v1"
    # idempotent, and an abort never touches what is live
    code, printed, err = phase(server, "abort", commit)
    assert (code, printed["removed"]) == (0, False) and "has no candidate: nothing to abort" in err
    code, printed, err = phase(server, "abort", v1)
    assert (code, printed["removed"]) == (0, False) and f"app-{v1} is live: nothing to abort" in err
    assert server.get("/").text == "v1"
    # nothing prepared: a commit is refused in one line and changes nothing
    code, printed, err = phase(server, "commit", commit)
    assert code == 1 and printed is None
    assert err.splitlines()[-1] == (f"deploy-version: commit: app-{rev} is not prepared (deploy-version "
                                    "--prepare first; a deploy of the app since then removes it)")
    assert live(server) == f"app-{v1}" and server.get("/").text == "v1"


def test_a_candidate_never_committed_is_removed_by_the_next_deploy(server):
    assert server.commit_app("v1") and server.push().returncode == 0
    commit = store(server, "v2")
    assert phase(server, "prepare", commit)[0] == 0
    prepared = server.app("app").version(commit)
    v3 = server.commit_app("v3")[:12]
    result = server.push()
    assert result.returncode == 0, result.stderr
    assert f"removing app-{commit[:12]}, prepared and never committed or aborted" in result.stderr
    assert not os.path.exists(prepared.prepared_file) and not os.path.exists(prepared.vassal_ini)
    server.wait_emperor_vassals([f"app-{v3}.ini"])
    code, _, err = phase(server, "commit", commit)
    assert code == 1 and "is not prepared" in err and server.get("/").text == "v3"


def test_a_failed_prepare_leaves_no_candidate(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    commit = store(server, "broken", extra={"setup": "#!/bin/sh\necho half way\nexit 4\n"})
    code, printed, err = phase(server, "prepare", commit)
    assert code == 1 and printed is None
    assert "remote" not in err and "half way" in err
    assert err.splitlines()[-1].startswith("deploy-version: setup: ")
    assert f"app-{commit[:12]} not deployed; app-{v1} is still live" in err
    version = server.app("app").version(commit)
    assert not os.path.exists(version.prepared_file) and not os.path.exists(version.vassal_ini)
    assert server.vassal_inis() == [f"app-{v1}.ini"] and server.get("/").text == "v1"
    # what is not a commit of the repository is refused before anything runs
    for rev, message in [("0123456789abcdef0123456789abcdef01234567",
                          f"is no commit in {server.app('app').repo} (push it there first)"),
                         ("HEAD", "is not a commit: give 4 to 40 hex digits")]:
        code, printed, err = phase(server, "prepare", rev)
        assert code == 1 and len(err.splitlines()) == 1 and message in err, err


# /ping answers 500 once a file `sick` appears beside the app
SICKENING_APP = """import os

HERE = os.path.dirname(os.path.abspath(__file__))


def application(environ, start_response):
    sick = os.path.exists(os.path.join(HERE, "sick"))
    start_response("500 Sick" if sick else "200 OK", [("Content-Type", "text/plain")])
    return [b"sickening"]
"""


def test_commit_refuses_a_candidate_that_stopped_answering_since_it_was_prepared(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    commit = store(server, "v2", extra={"app.py": SICKENING_APP})
    assert phase(server, "prepare", commit)[0] == 0
    version = server.app("app").version(commit)
    open(os.path.join(version.workdir, "sick"), "w").close()
    code, printed, err = phase(server, "commit", commit)
    assert code == 1 and printed is None, err
    assert err.splitlines()[-1] == (f"deploy-version: commit: app-{commit[:12]} stopped answering since it "
                                    f"was prepared (GET /ping on unix:{version.socket}: status 500)"), err
    assert "Switching" not in err
    assert live(server) == f"app-{v1}" and server.get("/").text == "v1"
    assert not os.path.exists(version.prepared_file) and not os.path.exists(version.vassal_ini)
    server.wait_emperor_vassals([f"app-{v1}.ini"])
