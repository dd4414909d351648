"""What the fleet reads from a host is data (share/fleet/filter_plugins/
fleet_answers.py, fleet.py's status parsing): a strict schema for each
phase's answer, text made inert, garbage a failed host; and the journal of a
fleet deploy (fleet_journal.py), written whole or not at all, finished by the
next push when the branch names its commit (on a controller too)."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from uwsgi_deploy import DeployError, controller, fleet, fleet_journal
from uwsgi_deploy.layout import App
from uwsgi_deploy.lock import DeployLock
from uwsgi_deploy.report import Reporter
from uwsgi_deploy.settings import load

sys.path.insert(0, os.path.join(ROOT, "share", "fleet", "filter_plugins"))
import fleet_answers  # noqa: E402

REV = "0123456789ab"
TEMPLATE = "{{ lookup('pipe', 'id > /tmp/PWNED') }}"


def ran(stdout, rc=0, **more):
    return dict(rc=rc, stdout=stdout, stderr="", changed=True, **more)


def commit_answer(**changes):
    answer = {"version": f"app-{REV}", "switched": True, "previous": "app-aaaaaaaaaaaa", "previous_rev": "a" * 12}
    answer.update(changes)
    return json.dumps(answer)


def test_a_valid_answer_passes_with_its_values():
    answer = fleet_answers.fleet_answer(ran(commit_answer() + "\n"), "commit")
    assert answer == {"ok": True, "version": f"app-{REV}", "switched": True, "previous": "app-aaaaaaaaaaaa",
                      "previous_rev": "a" * 12}
    assert fleet_answers.fleet_answer(ran(commit_answer(previous_rev="a" * 40)), "commit")["ok"]
    assert fleet_answers.fleet_answer(ran(commit_answer(previous=None, previous_rev=None)), "commit")["ok"]


@pytest.mark.parametrize("stdout, why", [
    (commit_answer(previous_rev=TEMPLATE), "invalid previous_rev"),
    (commit_answer(previous=TEMPLATE), "invalid previous"),
    (commit_answer(previous_rev="a" * 13), "invalid previous_rev"),
    (commit_answer(previous_rev="A" * 12), "invalid previous_rev"),
    (commit_answer(switched="yes"), "invalid switched"),
    (commit_answer(version="../../etc-0123456789ab"), "invalid version"),
    (commit_answer(extra=1), "is not the commit answer"),
    ('["a list"]', "is not the commit answer"),
    ("Traceback (most recent call last)\n{", "not JSON"),
    ("", "not JSON"),
    ("x" * 5000, "expected size"),
])
def test_anything_else_is_a_failed_host(stdout, why):
    answer = fleet_answers.fleet_answer(ran(stdout), "commit")
    assert answer["ok"] is False and why in answer["error"]
    assert "{{" not in answer["error"]


def test_a_failed_unreachable_or_timed_out_command_has_no_answer():
    for result in (ran(commit_answer(), rc=1), dict(unreachable=True, msg="x"), None, "garbage",
                   dict(failed=True, msg="The raw action failed to execute in the expected time frame (5)")):
        assert fleet_answers.fleet_answer(result, "commit")["ok"] is False


def test_text_from_a_host_is_one_inert_line():
    shown = fleet_answers.shown("\x1b[31m" + TEMPLATE + "\n{% for x in y %}{# c #}" + "z" * 400)
    assert "\x1b" not in shown and "\n" not in shown and len(shown) == fleet_answers.MAX_LINE
    assert "{{" not in shown and "{%" not in shown and "{#" not in shown
    reason = fleet_answers.fleet_reason(dict(failed=True, rc=1, stderr_lines=["deploy-version: " + TEMPLATE]),
                                        "commit")
    assert "{{" not in reason and "lookup('pipe'" in reason
    timed_out = dict(failed=True, msg="The ansible.builtin.raw action failed to execute in the expected time "
                                      "frame (25) and was terminated")
    assert fleet_answers.fleet_reason(timed_out, "commit", 25) == "no answer within 25 s (commit)"
    lost = dict(unreachable=True, msg="Failed to connect to the host via ssh: -----> Switching " + TEMPLATE
                + "\nTimeout, server 127.0.0.1 not responding.")
    assert fleet_answers.fleet_reason(lost, "commit") == \
        "unreachable (commit): Timeout, server 127.0.0.1 not responding."


# git push's stderr over ssh, as it was seen: a host whose sshd never answered
# (ConnectTimeout), one that stopped answering mid-push (ServerAlive), one that refused
BANNER = ("Connection timed out during banner exchange\nConnection to 127.0.0.1 port 52003 timed out\n"
          "fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\n"
          "and the repository exists.\n")
STALLED = "Timeout, server 127.0.0.1 not responding.\nfatal: the remote end hung up unexpectedly\n"
REJECTED = ("remote: error: object directory full\nTo 127.0.0.1:app.git\n"
            " ! [remote rejected] 0123 -> refs/fleet/candidate (pre-receive hook declined)\n"
            "error: failed to push some refs to '127.0.0.1:app.git'\n")


@pytest.mark.parametrize("stderr, reason", [
    (BANNER, "unreachable (push): Connection timed out during banner exchange"),
    (STALLED, "unreachable (push): Timeout, server 127.0.0.1 not responding."),
    (REJECTED, "the push to it failed: error: failed to push some refs to '127.0.0.1:app.git'"),
    ("", "the push to it failed: git push exited with status 128"),
])
def test_a_failed_push_says_what_ssh_or_git_said_not_gits_hint(stderr, reason):
    result = dict(failed=True, rc=128, stderr=stderr, stderr_lines=stderr.splitlines(), msg="non-zero return code")
    assert fleet_answers.fleet_reason(result, "push", 25) == reason


def test_in_ansible_the_text_is_also_marked_unsafe():
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import fleet_answers; "
              "print(type(fleet_answers.shown('{{ x }}')).__name__)")
    result = subprocess.run(["/usr/bin/python3", "-c", script, os.path.join(ROOT, "share", "fleet", "filter_plugins")],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "AnsibleUnsafeText", result.stderr


def test_the_undo_plan_counts_a_host_without_a_valid_answer_as_maybe_switched():
    prepared = ran(json.dumps({"version": f"app-{REV}", "prepared": True, "live": "app-aaaaaaaaaaaa",
                               "live_rev": "a" * 12}))
    already = ran(json.dumps({"version": f"app-{REV}", "prepared": False, "live": f"app-{REV}",
                              "live_rev": REV}))
    hostvars = {
        "h1": {"prepared": prepared, "committed": ran(commit_answer())},
        "h2": {"prepared": prepared, "committed": ran("garbage")},
        "h3": {"prepared": prepared, "committed": ran(commit_answer(previous_rev=TEMPLATE))},
        "h4": {"prepared": prepared, "committed": dict(failed=True, rc=1, stderr_lines=["watch: died"])},
        "h5": {"prepared": prepared, "committed": dict(unreachable=True, msg="Connection timed out")},
        "h6": {"prepared": prepared},
        "h7": {"prepared": already, "committed": ran(commit_answer(switched=False))},
    }
    assert fleet_answers.fleet_undo_plan(hostvars, sorted(hostvars)) == {
        "switched": ["h1"], "unknown": ["h2", "h3", "h5"], "refused": ["h4"], "waiting": ["h6"],
        "already_live": ["h7"]}


def test_a_host_status_that_is_garbage_or_a_template_is_a_host_that_did_not_answer():
    good = json.dumps({"apps": [{"name": "app", "live": f"app-{REV}", "answers_ping": True}]})
    status = fleet.parse_answers("app", {
        "h1": {"ok": True, "stdout": good},
        "h2": {"ok": True, "stdout": "<html>garbage"},
        "h3": {"ok": True, "stdout": json.dumps({"apps": [{"name": "app", "live": TEMPLATE,
                                                           "answers_ping": True}]})},
        "h4": {"ok": False, "stdout": None, "error": "unreachable (status): \x1b[2Jgone"}})
    assert [(h.host, h.live, h.error) for h in status.hosts] == [
        ("h1", f"app-{REV}", None),
        ("h2", None, "answered something that is not deploy-status's JSON"),
        ("h3", None, "answered a live version that is no version of the app"),
        ("h4", None, "unreachable (status):  [2Jgone")]
    assert status.split


def test_the_journal_is_replaced_whole_and_describes_the_deploy(tmp_path):
    path = str(tmp_path / "app.fleet.journal")
    assert fleet_journal.read(path) is None
    fleet_journal.write(path, {"app": "app", "commit": "c" * 40, "phase": "push", "hosts": {}})
    fleet_journal.update(path, phase="commit", hosts={"h1": "committed", "h2": "committing"})
    fleet_journal.update(path, hosts={"h3": "unknown"})
    record = fleet_journal.read(path)
    assert record["phase"] == "commit" and record["hosts"] == {"h1": "committed", "h2": "committing",
                                                               "h3": "unknown"}
    assert os.listdir(tmp_path) == ["app.fleet.journal"]         # no temporary file left
    what = fleet_journal.describe(record)
    assert what.startswith("app-cccccccccccc, cut short in its commit phase since ")
    assert what.endswith("; committed on h1; committing on h2; unknown on h3")
    with open(path, "w") as stream:
        stream.write('{"app": "ap')                               # not a record we wrote
    assert "unreadable" in fleet_journal.read(path)
    assert fleet_journal.update(path, phase="x") is None


def test_a_journal_whose_commit_the_branch_names_is_finished_not_rolled_back(tmp_path):
    """A deploy's journal left behind (its status could not be read) while
    its push was accepted: the branch names its commit. On a controller the
    branch is its copy's, pushed there by the primary with each request
    (controller.request_deploy), as it stood before that push."""
    home = str(tmp_path)
    os.makedirs(os.path.join(home, "run"))
    settings = load({"HOME": home, "PATH": os.environ["PATH"]})
    app = App(settings, "app")
    repo = os.path.join(home, "app.git")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", f"--git-dir={repo}"]
    subprocess.run(["git", "init", "-q", "--bare", repo], check=True)
    tree = subprocess.run([*git, "mktree"], input="", capture_output=True, text=True, check=True).stdout.strip()
    commit = subprocess.run([*git, "commit-tree", "-m", "v1", tree], capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run([*git, "update-ref", "refs/heads/main", commit], check=True)
    path = fleet.journal_path(app)
    fleet_journal.write(path, {"app": "app", "commit": commit, "ref": "refs/heads/main", "phase": "ended",
                               "verdict": "unknown", "hosts": {"h1": "committed", "h2": "committed"}})
    lines = []
    report = Reporter()
    report.line = lines.append
    assert fleet.recover(settings, app, repo, {"HOME": home}, report) == "finished"
    assert fleet_journal.read(path) is None
    assert any(f"Finished: refs/heads/main names {commit[:12]}, the push was accepted; nothing to undo" in line
               for line in lines), lines
    assert not any("Rolling back" in line for line in lines), lines


@pytest.mark.parametrize("ref", ["main", "refs/tags/v1", "refs/heads/a..b", "--upload-pack=x"])
def test_deploy_fleet_takes_only_a_branch_ref(tmp_path, ref):
    with pytest.raises(DeployError, match="give the deploy branch as a full ref"):
        controller.deploy("app", "a" * 40, ref=ref, environ={"HOME": str(tmp_path), "PATH": os.environ["PATH"]})


# -- how long the primary waits for its controller -------------------------------------------
INVENTORY = """# Written by install.yml: the fleet's hosts as the controller reaches them.
[fleet]
h1 ansible_host=10.0.0.1 ansible_port=22 deploy_user=app
h2 ansible_host=10.0.0.2 ansible_port=22 deploy_user=app

h3 ansible_host=10.0.0.3 ansible_port=2222 deploy_user=app
[other]
x ansible_host=10.0.0.9
"""


def test_the_controller_gets_what_the_fleets_own_limits_add_up_to(tmp_path):
    (tmp_path / "app.inventory").write_text(INVENTORY)
    assert fleet.inventory_hosts(str(tmp_path / "app.inventory")) == ["h1", "h2", "h3"]
    assert [fleet.commit_batches(b, 3) for b in ("", "1", "2", "50%", "100%", "5")] == [1, 3, 2, 3, 1, 1]
    assert fleet.commit_batches("50%", 4) == 2
    settings = load({"HOME": str(tmp_path), "PATH": os.environ["PATH"]})
    # the defaults: a step 60 s, a switch 60 + 30 + 30 + 3 + 30 + 30 = 183 s, the prepare 1900 s, the lock 600 s:
    # lock + undo + push + prepare + (a commit, then the rollback one host after another) + status + 3 margins
    assert fleet.timeouts(settings) == {"step_timeout": 60, "switch_timeout": 183, "prepare_timeout": 1900}
    assert fleet.deploy_limit(settings, 3) == 600 + 183 + 60 + 1900 + (183 + 3 * 183) + 60 + 3 * 20
    one_at_a_time = load({"HOME": str(tmp_path), "PATH": os.environ["PATH"], "DEPLOY_FLEET_BATCH": "1"})
    assert fleet.deploy_limit(one_at_a_time, 3) == fleet.deploy_limit(settings, 3) + 2 * 183
    # a prepare that fails: an abort per host, one after another, each a step
    quick_switch = load({"HOME": str(tmp_path), "PATH": os.environ["PATH"], "DEPLOY_FLEET_TIMEOUT": "100",
                         "DEPLOY_READY_TIMEOUT": "0", "DEPLOY_PROBE_TIMEOUT": "0", "DEPLOY_WATCH": "0",
                         "DEPLOY_WATCH_MAX": "0", "DEPLOY_DRAIN_TIMEOUT": "0"})
    assert fleet.deploy_limit(quick_switch, 3) == 600 + 100 + 100 + 1900 + max(3 * 100, 100 + 300) + 100 + 60


def test_a_controller_that_does_not_answer_is_ended_at_the_limit():
    report = Reporter()
    lines = []
    report.line = lines.append
    started = time.monotonic()
    code, reason, ended = controller.relay(["sh", "-c", "echo started; exec sleep 60"], dict(os.environ), report,
                                           "/", limit=1)
    assert ended and code == -9 and reason is None and lines == ["started"]
    assert time.monotonic() - started < 10
    code, reason, ended = controller.relay(["sh", "-c", "echo 'deploy-fleet: no'; exit 1"], dict(os.environ), report,
                                           "/", limit=10)
    assert (code, reason, ended) == (1, "no", False)


def test_a_controller_past_the_primarys_start_by_does_nothing(tmp_path):
    """The primary stopped waiting (start_by passed) before the controller
    got the fleet lock: nothing is done, no journal written. One that waits
    for the lock waits no longer than start_by."""
    home = str(tmp_path)
    os.makedirs(os.path.join(home, "run"))
    (tmp_path / "app.inventory").write_text(INVENTORY)
    settings = load({"HOME": home, "PATH": os.environ["PATH"]})
    app = App(settings, "app")
    with pytest.raises(DeployError, match="the primary stopped waiting for it to start at .*; nothing done"):
        fleet.fleet_deploy(settings, app, home, "a" * 40, {"HOME": home}, Reporter(), start_by=time.time() - 1)
    assert fleet_journal.read(fleet.journal_path(app)) is None
    with DeployLock(app.fleet_lock_file, 0, "a hung fleet deploy"):
        started = time.monotonic()
        with pytest.raises(DeployError, match="another deploy holds .* gave up after"):
            fleet.fleet_deploy(settings, app, home, "a" * 40, {"HOME": home}, Reporter(), start_by=time.time() + 1)
        assert time.monotonic() - started < 5
    assert fleet_journal.read(fleet.journal_path(app)) is None
