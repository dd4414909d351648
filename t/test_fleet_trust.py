"""What the fleet reads from a host is data (share/fleet/filter_plugins/
fleet_answers.py, fleet.py's status parsing): a strict schema for each
phase's answer, text made inert, garbage a failed host; and the journal of a
fleet deploy (fleet_journal.py), written whole or not at all, finished by the
next push when the branch names its commit (on a controller too)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from uwsgi_deploy import DeployError, controller, fleet, fleet_journal
from uwsgi_deploy.layout import App
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
