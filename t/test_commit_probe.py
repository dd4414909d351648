"""deploy-version --commit asks a prepared candidate once whether it still
answers: one that answers anything but 200 is refused at once, not retried
for DEPLOY_PROBE_TIMEOUT (a fleet commit would pay that on every host)."""
import json
import os

import pytest

pytestmark = pytest.mark.emperor

# /ping answers 500 once a file `sick` appears beside the app, and each sick
# answer leaves a line in `sick-answers`: the app counts what it was asked
SICK_COUNTING_APP = """import os

HERE = os.path.dirname(os.path.abspath(__file__))


def application(environ, start_response):
    if os.path.exists(os.path.join(HERE, "sick")):
        with open(os.path.join(HERE, "sick-answers"), "a") as stream:
            stream.write(environ["PATH_INFO"] + "\\n")
        start_response("500 Sick", [("Content-Type", "text/plain")])
        return [b"sick"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"well"]
"""


def test_commit_asks_a_sick_candidate_once(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    commit = server.commit_app("v2", extra={"app.py": SICK_COUNTING_APP})
    assert server.push(refspec="main:refs/fleet/candidate").returncode == 0
    result = server.tool("deploy-version", "--prepare", "app", commit)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["prepared"] is True
    version = server.app("app").version(commit)
    open(os.path.join(version.workdir, "sick"), "w").close()

    result = server.tool("deploy-version", "--commit", "app", commit[:12])
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"deploy-version: commit: app-{commit[:12]} stopped answering since it was prepared "
        f"(GET /ping on unix:{version.socket}: status 500)"), result.stderr
    with open(os.path.join(version.workdir, "sick-answers")) as stream:
        assert stream.read().splitlines() == ["/ping"]    # asked once, not retried
    assert server.get("/").text == "v1"
    assert not os.path.exists(version.vassal_ini)
    server.wait_emperor_vassals([f"app-{v1}.ini"])
