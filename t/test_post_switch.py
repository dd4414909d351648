"""The post-switch contract (pipeline.py, Switch.finish): once the new
version serves and the watch passed, nothing refuses the push. A failure in
retire, link or the deploy.log line is a warning; the log line names what
was left undone; the next deploy finishes it. Each failure is made by the
tests' hook (t/hooks/pre-receive): a pause at the stage that nobody
releases raises in the pipeline there."""
import os

import pytest

pytestmark = pytest.mark.emperor


def push_failing_at(server, point):
    """Push the source's main; the deploy raises on reaching point. (status, output)."""
    return server.paused_push(point, timeout=1).finish()


def last_log_line(server):
    with open(server.settings.log_file) as stream:
        return stream.read().splitlines()[-1]


def test_a_failure_after_the_switch_is_a_warning_and_the_push_succeeds(server):
    app = server.app("app")
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0

    # retire fails: v2 serves, v1's vassal still runs, the push succeeds
    v2 = server.commit_app("v2")[:12]
    status, output = push_failing_at(server, "retire")
    assert status == 0, output
    assert "remote:  !     retire: PauseTimedOut: the test pause at retire was not released within 1 s" \
        in output, output
    assert f"app-{v2} is live all the same; the next deploy of app finishes what retire left undone" in output
    assert f"app-{v2} is live: serving" in output
    assert "not deployed" not in output and "Traceback" not in output
    assert server.get("/").text == "v2"
    assert os.readlink(app.home_link) == f"app-{v2}"
    line = last_log_line(server)
    assert line.startswith(f"app-{v2} ") and line.endswith(f"previous=app-{v1} unfinished=retire"), line
    assert server.vassal_inis() == sorted([f"app-{v1}.ini", f"app-{v2}.ini"])   # left undone

    # link fails: v3 serves, ~/APP still names v2; the sweep removed v1 first
    v3 = server.commit_app("v3")[:12]
    status, output = push_failing_at(server, "link")
    assert status == 0, output
    assert "remote:  !     link: PauseTimedOut: the test pause at link was not released within 1 s" in output
    assert "finishes what link left undone" in output
    assert f"removing app-{v1}, left by an interrupted deploy" in output
    assert server.get("/").text == "v3"
    assert os.readlink(app.home_link) == f"app-{v2}"
    line = last_log_line(server)
    assert line.startswith(f"app-{v3} ") and line.endswith(f"previous=app-{v2} unfinished=link"), line

    # the log line cannot be written: v4 serves all the same, and the pusher is told
    v4 = server.commit_app("v4")[:12]
    status, output = push_failing_at(server, "log")
    assert status == 0, output
    assert (f"remote:  !     log: {server.settings.log_file} does not record that app-{v4} went live "
            "(PauseTimedOut: the test pause at log was not released within 1 s") in output, output
    assert server.get("/").text == "v4"
    assert os.readlink(app.home_link) == f"app-{v4}"
    assert last_log_line(server).startswith(f"app-{v3} ")

    # the next deploy leaves the layout whole: one vassal, ~/APP, its log line
    v5 = server.commit_app("v5")[:12]
    result = server.push()
    assert result.returncode == 0, result.stderr
    assert " !  " not in result.stderr, result.stderr
    assert server.get("/").text == "v5"
    server.wait_emperor_vassals([f"app-{v5}.ini"])
    assert os.readlink(app.home_link) == f"app-{v5}"
    line = last_log_line(server)
    assert line.startswith(f"app-{v5} ") and "unfinished" not in line, line
