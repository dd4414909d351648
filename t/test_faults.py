"""Faults: a second deploy at once, a deploy killed at every stage, a lost
client, a version that dies right after the switch, an Emperor restart."""
import os
import re
import signal

import pytest

from conftest import wait_until
from load import BUSY_INI, BusyLoad
from sandbox import process_ended, wait_file
from uwsgi_deploy.lock import DeployLock


def assert_clean_layout(server, live_rev):
    """Exactly the live version's vassal, sockets and links; nothing hidden left."""
    assert server.vassal_inis() == [f"app-{live_rev}.ini"]
    server.wait_emperor_vassals([f"app-{live_rev}.ini"])
    assert os.listdir(server.settings.vassals_dir) == [f"app-{live_rev}.ini"]
    run = sorted(n for n in os.listdir(server.settings.run_dir) if n.startswith("app"))
    assert run == sorted(["app.socket", "app.lock", f"app-{live_rev}.socket", f"app-{live_rev}.stats"])
    hidden = [n for n in os.listdir(server.home) if n.startswith(".app") or n.endswith(".new")]
    assert hidden == []
    assert os.readlink(server.app("app").live_socket) == f"app-{live_rev}.socket"
    assert os.readlink(server.app("app").home_link) == f"app-{live_rev}"


# -- one deploy per app at a time ---------------------------------------------

def test_second_push_of_same_app_waits_for_the_first(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    server.commit_app("v2")
    first = server.paused_push("probe")
    first.reached()
    other = server.source_repo("src2")
    server.git(other, "pull", "-q", server.source_repo(), "main")
    server.commit_app("v3", repo=other)
    second = server.start_push(repo=other)
    second.wait_for_output("waiting for another deploy to finish (app-")
    assert second.running()
    first.release()
    first_status, first_out = first.finish()
    second_status, second_out = second.finish()
    assert first_status == 0, first_out
    # the branch moved while it waited: git would refuse to update it after
    # the deploy, so the deploy is refused before it starts
    assert second_status != 0
    assert "refs/heads/main moved to " in second_out and "fetch, then push again" in second_out
    assert server.get("/").text == "v2"
    server.git(other, "pull", "-q", "--rebase", os.path.join(server.home, "app.git"), "main")
    v3 = server.git(other, "rev-parse", "HEAD").stdout[:12]
    result = server.push(repo=other, force=False)
    assert result.returncode == 0, result.stderr
    assert server.get("/").text == "v3"
    assert_clean_layout(server, v3)


def test_lock_wait_is_bounded_and_names_the_holder(server):
    server.commit_app("v1")
    app = server.app("app")
    with DeployLock(app.lock_file, 1, "app-0123456789ab (push)"):
        result = server.push(extra_env={"DEPLOY_LOCK_TIMEOUT": "1"})
    assert result.returncode != 0
    assert "another deploy holds" in result.stderr and "app-0123456789ab (push), pid" in result.stderr
    assert server.vassal_inis() == []


def test_two_apps_deploy_in_parallel(server):
    server.deploy_init("other")
    server.commit_app("v1")
    paused = server.paused_push("probe")
    paused.reached()
    other_repo = server.source_repo("src-other")
    server.commit_app("o1", repo=other_repo)
    # with one lock for all apps, this push would wait for app's, then give up
    result = server.push(app="other", repo=other_repo, extra_env={"DEPLOY_LOCK_TIMEOUT": "5"})
    assert result.returncode == 0, result.stderr
    assert "waiting for another deploy" not in result.stderr
    assert paused.running() and os.path.exists(paused.gate)    # app's deploy is still paused
    assert server.vassal_inis() == [os.path.basename(server.app("other").live_version().vassal_ini)]
    paused.release()
    assert paused.finish()[0] == 0
    assert server.get("/").text == "v1"


# -- a deploy killed at each stage ---------------------------------------------

STAGES = ["checkout", "env", "setup", "expand", "probe", "reconfigure", "inspect", "switch", "watch", "retire", "link",
          "log"]
AFTER_SWITCH = {"watch", "retire", "link", "log"}


@pytest.mark.parametrize("stage", STAGES)
def test_deploy_killed_at_stage_keeps_serving_and_next_deploy_cleans_up(busy_server, stage):
    server = busy_server
    if stage == "reconfigure":      # a stage of DEPLOY_PROBE_VIA=http only
        server.environ["DEPLOY_PROBE_VIA"] = "http"
    revs = {"v1": server.commit_app("v1", extra={"setup": "#!/bin/sh\n:\n", "uwsgi.ini": BUSY_INI})[:12]}
    # the world's first version, before any load: its watch would only cost time;
    # the killed deploy and the one after it run with the default settings
    assert server.push(extra_env={"DEPLOY_WATCH": "0"}).returncode == 0
    revs["v2"] = server.commit_app("v2", extra={"uwsgi.ini": BUSY_INI})[:12]
    with BusyLoad(server, ["v1", "v2", "v3"]) as load:
        push = server.paused_push(stage)
        os.kill(push.reached(), signal.SIGKILL)
        status, out = push.finish(60)
        assert status != 0, out          # the hook died: git refuses the push
        live = "v2" if stage in AFTER_SWITCH else "v1"
        # exactly one version is live, and it serves
        assert os.readlink(server.app("app").live_socket) == f"app-{revs[live]}.socket"
        load.settle()
        assert server.get("/").text == live
        v3 = server.commit_app("v3", extra={"uwsgi.ini": BUSY_INI})[:12]
        result = server.push()
        assert result.returncode == 0, result.stderr
        load.settle()
    print(f"killed at {stage}:")
    load.assert_nothing_lost()
    assert server.get("/").text == "v3"
    assert_clean_layout(server, v3)


def test_deploy_killed_while_setup_runs_leaves_no_setup_behind(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    marker = os.path.join(server.root, "setup-pid")
    server.commit_app("v2", extra={"setup": f"#!/bin/sh\necho $$ > {marker}.tmp\n"
                                            f"echo $PPID > {marker}.hook\nmv {marker}.tmp {marker}\n"
                                            "exec sleep 60\n"})
    push = server.start_push()
    wait_file(marker)
    setup_pid = int(open(marker).read())
    os.kill(int(open(marker + ".hook").read()), signal.SIGKILL)
    status, output = push.finish(60)
    assert status != 0, output
    wait_until(lambda: process_ended(setup_pid), 5, "setup to end with its deploy")
    assert server.get("/").text == "v1"


# -- the pusher goes away ------------------------------------------------------------

def client_lost_at(server, point):
    """v1 live, then v2 pushed, and the pusher goes away while v2's deploy
    is paused at point; returns (v1, v2) once that deploy has ended."""
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    v2 = server.commit_app("v2")[:12]
    push = server.paused_push(point)
    hook = push.lose_client()
    push.release()
    wait_until(lambda: process_ended(hook), 60, "the deploy to end")
    return v1, v2


def test_client_lost_before_switch_abandons_candidate(server):
    """The pipe to the pusher breaks while the candidate runs: the deploy's
    next line fails (EPIPE, SIGPIPE), and it is abandoned like any failure."""
    v1, v2 = client_lost_at(server, "switch")
    server.wait_emperor_vassals([f"app-{v1}.ini"])
    assert server.vassal_inis() == [f"app-{v1}.ini"]
    assert os.readlink(server.app("app").live_socket) == f"app-{v1}.socket"
    assert server.get("/").text == "v1"
    assert not os.path.exists(server.app("app").version(v2).socket)
    assert not any(line.startswith(f"app-{v2}") for line in open(server.settings.log_file))


def test_client_lost_after_switch_still_finishes(server):
    """After the switch the new version is live: a pipe that breaks then
    (every line after it fails) leaves the deploy to finish quietly."""
    v1, v2 = client_lost_at(server, "retire")
    assert server.get("/").text == "v2"
    assert_clean_layout(server, v2)
    with open(server.settings.log_file) as stream:
        assert stream.read().splitlines()[-1].startswith(f"app-{v2} ")


def test_hangup_before_switch_abandons_candidate(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    server.commit_app("v2")
    push = server.paused_push("probe")
    os.kill(push.reached(), signal.SIGHUP)
    push.release()
    status, out = push.finish(60)
    assert status != 0
    assert "probe: interrupted by SIGHUP" in out
    assert server.get("/").text == "v1"
    assert server.vassal_inis() == [f"app-{v1}.ini"]


# -- the post-switch watch ---------------------------------------------------------

CRASHING_APP = '''import os, threading
from app_base import application as base
armed = False


def application(environ, start_response):
    global armed
    if not armed:               # this worker dies 1 s after its first request
        armed = True
        threading.Timer(1.0, os._exit, (3,)).start()
    return base(environ, start_response)
'''


def test_version_crashing_after_switch_is_rolled_back(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    server.commit_app("v2")
    base = open(os.path.join(server.source_repo(), "app.py")).read()
    v2 = server.commit({"app_base.py": base, "app.py": CRASHING_APP,
                        "uwsgi.ini": "[uwsgi]\nmaster = true\nprocesses = 2\nenable-threads = true\n"
                                     "wsgi-file = app.py\n"})[:12]
    result = server.push(extra_env={"DEPLOY_WATCH": "4"})
    assert result.returncode != 0
    assert "remote:  !     watch: worker" in result.stderr and "crashed" in result.stderr
    assert f"switched back to app-{v1}" in result.stderr
    assert server.get("/").text == "v1"
    assert os.readlink(server.app("app").live_socket) == f"app-{v1}.socket"
    server.wait_emperor_vassals([f"app-{v1}.ini"])
    assert server.vassal_inis() == [f"app-{v1}.ini"]
    assert not any(line.startswith(f"app-{v2}") for line in open(server.settings.log_file))


def test_watch_passes_a_healthy_version(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    server.commit_app("v2")
    result = server.push(extra_env={"DEPLOY_WATCH": "1.5"})
    assert result.returncode == 0, result.stderr
    watched = float(re.search(r"watch done \(([\d.]+) s\)", result.stderr).group(1))
    assert watched >= 1.5     # the whole window, not cut short
    assert server.get("/").text == "v2"


# -- the Emperor restarted ---------------------------------------------------------

def test_emperor_restart_brings_back_one_vassal_per_app_and_no_candidate(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    server.commit_app("v2")
    push = server.paused_push("switch")
    os.kill(push.reached(), signal.SIGKILL)        # leaves the candidate's ini behind
    status, output = push.finish(60)
    assert status != 0, output
    assert len(server.vassal_inis()) == 2
    kind, emperor = next((k, p) for k, p in server.processes if k == "emperor")
    emperor.send_signal(signal.SIGINT)
    emperor.wait(30)
    server.processes.remove((kind, emperor))
    server.start_emperor()
    assert server.vassal_inis() == [f"app-{v1}.ini"]
    server.wait_emperor_vassals([f"app-{v1}.ini"])
    wait_until(lambda: server.get("/").status_code == 200, 15, "the live version to serve again")
    assert server.get("/").text == "v1"
