"""A prepared candidate whose controller never comes back is removed by its
host once DEPLOY_PREPARED_MAX_AGE has passed (expiry.py): a real Emperor, a
real prepare, nothing committed."""
import os
import time

import pytest

from sandbox_server import wait_until
from test_phases import live, phase, store
from uwsgi_deploy.inventory import is_prepared

pytestmark = pytest.mark.emperor


def test_a_candidate_never_committed_is_removed_by_its_host_after_the_time_limit(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    server.environ["DEPLOY_PREPARED_MAX_AGE"] = "4"
    commit = store(server, "v2")
    started = time.monotonic()
    code, printed, err = phase(server, "prepare", commit)
    assert code == 0, err
    version = server.app("app").version(commit[:12])
    assert is_prepared(version)
    wait_until(lambda: not os.path.exists(version.prepared_file), 60, "the candidate's time limit")
    assert time.monotonic() - started >= 4
    server.wait_emperor_vassals([f"app-{v1}.ini"])           # its vassal is gone, v1 untouched
    assert live(server) == f"app-{v1}" and server.get("/").text == "v1"
    with open(os.path.join(server.settings.log_dir, "app.expired.log")) as stream:
        logged = stream.read()
    assert f"app-{commit[:12]} prepared" in logged and "never committed" in logged
    code, printed, err = phase(server, "commit", commit[:12])
    assert code == 1 and f"app-{commit[:12]} is not prepared" in err


def keepers(home):
    """PIDs of expiry keepers running for the deploy home."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                argv = stream.read()
            with open(f"/proc/{entry}/environ", "rb") as stream:
                environ = stream.read()
        except OSError:
            continue
        if b"uwsgi_deploy.expiry" in argv and f"HOME={home}".encode() in environ.split(b"\0"):
            found.append(int(entry))
    return found


def test_a_committed_candidate_is_left_alone_by_its_keeper(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    server.environ["DEPLOY_PREPARED_MAX_AGE"] = "120"   # far more than prepare to commit takes
    commit = store(server, "v2")
    assert phase(server, "prepare", commit)[0] == 0
    assert len(keepers(server.home)) == 1
    assert phase(server, "commit", commit[:12])[0] == 0
    wait_until(lambda: keepers(server.home) == [], 30, "the keeper to end")
    assert live(server) == f"app-{commit[:12]}" and server.get("/").text == "v2"
    assert not os.path.exists(os.path.join(server.settings.log_dir, "app.expired.log"))
