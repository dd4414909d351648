"""A fleet of three hosts under faults (docs/fleet-faults.md), with a request
loop on every host's nginx that must see no failed request:

- a host that prints a template, one that prints garbage, and one that
  never answers (its sshd does: only the commit's limit ends it), as their
  commit's answer: nothing runs on the primary, the three count as failed
  hosts, every host is rolled back, and the push ends once the commit's
  limit (the step limit plus the hosts' own watch and drain waits) passed;
- host 3 cut off (its sshd and every connection it serves stopped, by PID:
  what a partition looks like from the primary, while the host's own
  processes go on) in the middle of the push to it (its hook held until
  then: the pack received, the ref not updated), during prepare, and during
  commit: the push ends within its bound with the documented outcome;
  deploy-status --fleet then shows what host 3 holds and the deploy that
  was cut short; once host 3 is back, the next push undoes what was left
  and brings every host to one version, with nothing left behind;
- the primary's controller (its hook and the playbook's session) killed
  during commit: deploy-status --fleet shows an interrupted deploy, the next
  push rolls it back and says so;
- the primary's controller hung (stopped while it waits for its fleet
  lock): the pusher is let go at the limit the fleet's bounds add up to, in
  one line, and that controller, let go, does nothing;
- a setup of 90 s, printing nothing (more than the step limit and the
  keep-alive bound), is a slow host, not a dead one;
- a journal left by a deploy whose push was accepted is finished by the
  next push, not rolled back.

Durations: the primary's DEPLOY_FLEET_TIMEOUT is 25 s here (default 60): a
host that stops answering fails in ~15-20 s by ssh's keep-alives (5 s x 3,
ansible.cfg) or 10 s by ConnectTimeout, whatever the step limit; the slow
setup takes 90 s, more than the step limit and the keep-alive bound both, so
a fleet that timed a prepare by either would fail it; the prepare's own
limit (DEPLOY_FLEET_PREPARE_TIMEOUT, 1900 s) lets it finish. A commit or
an undo gets 25 s plus the hosts' own waits (148 s here, fleet.timeouts): a
commit right after a request loop stopped has its watch extended (up to
DEPLOY_WATCH_MAX) by the traffic it expects, and a 25 s limit alone timed
out such healthy commits on every host.

The tests are in four xdist groups (below): under `make test` each runs
on its own worker with its own world (conftest's fleet_world, one a
worker), side by side; each test starts from every host on one version."""
import fcntl
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from uwsgi_deploy import fleet_journal
from uwsgi_deploy.fleet import deploy_limit, timeouts
from uwsgi_deploy.settings import load
from fleet_world import (APP, FleetLoad, assert_no_candidate_anywhere, pusher_lines, steady_traffic,
                         same_version_everywhere)
from sandbox_server import wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.ssh, pytest.mark.emperor, pytest.mark.load]
# Each test runs in one of four xdist groups: under `make test` each group
# runs on its own worker with its own fleet world (conftest's fleet_world,
# one a worker), the four side by side, and the longest group ends the run.
# The groups are balanced by the durations of two clean-clone runs of make
# test: A, the lying hosts (218-221 s) and the hung controller (83 s); B, the
# push cut (148-161 s), the prepare cut (105-120 s) and the journal of an
# accepted push (16-19 s); C, the commit cut (156-174 s) and the slow setup
# (117-121 s); and test_fleet.py's group ("fleet-deploys", its deploys
# 230-246 s) with the controller killed (43-56 s). A world takes ~20 s to
# build alone, 73-103 s while four are built at once beside the other tests.
GROUP_A = pytest.mark.xdist_group("fleet")
GROUP_B = pytest.mark.xdist_group("fleet-b")
GROUP_C = pytest.mark.xdist_group("fleet-c")
WITH_DEPLOYS = pytest.mark.xdist_group("fleet-deploys")   # test_fleet.py's world, after its tests

STEP_LIMIT = 25          # the primary's DEPLOY_FLEET_TIMEOUT here
KEEP_ALIVE_BOUND = 20    # ssh's ServerAlive 5 s x 3 (share/fleet/ansible.cfg): a silent host is dead after this
SLOW_SETUP = 90          # seconds: a long dependency build, silent; > STEP_LIMIT, > KEEP_ALIVE_BOUND
# a push with a host cut off: the prepare or commit finds it dead (<= ~20 s),
# the abort or rollback (<= ConnectTimeout 10 s) and the status (<= 10 s) skip
# it; the rest is a healthy push (~7 s quiet, ~60 s on a loaded machine).
# A push past this bound is a controller blocked on the dead host.
PUSH_BOUND = 300
# what a push without faults may take here, its rollback included (~10 s
# quiet, ~60 s on a loaded machine)
HEALTHY_PUSH = 150


@pytest.fixture(scope="module")
def fleet(fleet_world):
    fleet_world.set_setting("DEPLOY_FLEET_TIMEOUT", str(STEP_LIMIT))
    try:
        yield fleet_world
    finally:
        for host in fleet_world.hosts:
            host.heal()
        fleet_world.set_setting("DEPLOY_FLEET_TIMEOUT", None)


def journal(fleet):
    """The fleet deploy's journal: the controller's (it runs the fleet deploy)."""
    path = os.path.join(fleet.controller_home, "run", f"{APP}.fleet.journal")
    try:
        with open(path) as stream:
            return json.load(stream)
    except FileNotFoundError:
        return None


def when_journal(fleet, test, what, timeout=PUSH_BOUND):
    """Wait (from a push running in the background) until the journal
    shows test(record)."""
    def shown():
        record = journal(fleet)
        return record is not None and test(record)
    wait_until(shown, timeout, what)


def processes_of(uid):
    """(pid, argv) of every process uid runs, from /proc."""
    for entry in os.listdir("/proc"):
        try:
            if not entry.isdigit() or os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                yield int(entry), stream.read().split(b"\0")
        except OSError:
            continue


def running(host, phase):
    """host runs `deploy-version --PHASE` (as its deploy account): the
    command reached it."""
    return any(any(arg.endswith(b"deploy-version") for arg in argv[:2]) and f"--{phase}".encode() in argv
               for _pid, argv in processes_of(host.account.pw_uid))


def fleet_status(fleet):
    result = fleet.primary.ssh(f"deploy-status --fleet {APP} --json")
    [report] = json.loads(result.stdout)["fleets"]
    return result.returncode, report


def switch_limit(fleet):
    """What the controller gives a commit or an undo on a host: the step
    limit plus the hosts' own waits (fleet.timeouts), by its settings."""
    settings = load({"HOME": fleet.controller_home, "PATH": os.environ["PATH"]})
    assert settings.fleet_timeout == STEP_LIMIT
    return timeouts(settings)["switch_timeout"]


class Push:
    """fleet.push() in a thread, timed."""

    def __init__(self, fleet, bound=PUSH_BOUND):
        import threading
        self.fleet, self.result, self.took, self.bound = fleet, None, None, bound
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        started = time.monotonic()
        self.result = self.fleet.push()
        self.took = time.monotonic() - started

    def __enter__(self):
        self.thread.start()
        return self

    def wait(self):
        self.thread.join(self.bound)
        assert not self.thread.is_alive(), f"the push did not end within {self.bound} s"
        print(f"the push took {self.took:.1f} s")
        return self.result

    def __exit__(self, *exc):
        self.thread.join(self.bound)


def converges(fleet, version):
    """The next push brings every host to one version, losing no request,
    with nothing left behind (no candidate, no prepared record, no journal);
    its lines. Steady clients on every host all along (steady_traffic)."""
    served = list(dict.fromkeys(h.served() for h in fleet.hosts))
    commit = fleet.commit(version)
    with steady_traffic(fleet, served + [version]) as load:
        result = fleet.push()
        load.settle(20)
    load.report()
    assert result.returncode == 0, result.stderr
    assert load.failed() == {}
    rev = commit[:12]
    assert fleet.lives() == {h.name: f"{APP}-{rev}" for h in fleet.hosts}
    assert all(h.served() == version for h in fleet.hosts)
    assert_no_candidate_anywhere(fleet, rev)
    assert journal(fleet) is None
    code, report = fleet_status(fleet)
    assert code == 0 and report["deploy"] is None and report["live"] == f"{APP}-{rev}"
    lines = pusher_lines(result)
    print("\n".join(lines))
    return lines


# -- trust -----------------------------------------------------------------------------
# Each lying tool runs the host's real deploy-version (REAL: replace_tool moved
# it aside), never itself: "$HOME/bin/deploy-version" is the lying tool now
# (the gate execs ~/bin's), and a script calling it recursed for ever: the
# prepare exec'd itself in a loop, the commit forked without end. That, not
# the fleet, was the lying-host push that "hung" once the gate ran ~/bin's tool.
EVIL = """#!/bin/sh
# a compromised host's deploy-version: it commits, then answers a template
if [ "$1" = "--commit" ]; then
    REAL "$@" >/dev/null || exit $?
    echo '{"version": "app-000000000000", "switched": true, "previous": "{{ lookup(\\"pipe\\", \\"id > MARK\\") }}", "previous_rev": "{{ lookup(\\"pipe\\", \\"id > MARK\\") }}"}'
    echo '{{ lookup("pipe", "id > MARK.stderr") }}' >&2
    exit 0
fi
exec REAL "$@"
"""
GARBAGE = """#!/bin/sh
# a broken host's deploy-version: it commits, then answers garbage
if [ "$1" = "--commit" ]; then
    REAL "$@" >/dev/null || exit $?
    printf 'Traceback (most recent call last) \\033[31m{ not json\\n'
    exit 0
fi
exec REAL "$@"
"""
HUNG = """#!/bin/sh
# a hung host's deploy-version: it commits, then never answers, printing
# nothing (its sshd still answers ssh's keep-alives: only the commit's limit ends it)
if [ "$1" = "--commit" ]; then
    REAL "$@" >/dev/null || exit $?
    echo $$ > PIDFILE
    exec sleep 600
fi
exec REAL "$@"
"""


def replace_tool(host, text):
    """host's deploy-version, as the fleet key's gate runs it (from the
    host's ~/bin), replaced by text (REAL in it: the real one's path);
    returns a function that puts the real one back."""
    path = os.path.join(host.bin_dir, "deploy-version")
    os.rename(path, path + ".real")
    with open(path, "w") as stream:
        stream.write(text.replace("REAL", shlex.quote(path + ".real")))
    os.chmod(path, 0o755)

    def restore():
        os.rename(path + ".real", path)
    return restore


def end_hung(pidfile, host):
    """The hung tool's sleep, if it still runs (the step limit ended the
    task, not what the host runs): ended by its PID."""
    try:
        with open(pidfile) as stream:
            pid = int(stream.read())
    except (FileNotFoundError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            if stream.read().split(b"\0")[0] == b"sleep" and os.stat(f"/proc/{pid}").st_uid == host.account.pw_uid:
                os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass
    return pid


@GROUP_A
def test_hosts_answering_a_template_garbage_or_nothing_fail_and_every_host_rolls_back(fleet):
    """h1 commits then never answers, h2 answers garbage, h3 a template."""
    limit = switch_limit(fleet)      # what ends h1's commit: 25 + 30 + 30 + 3 + 30 + 30 = 148 s here
    old = same_version_everywhere(fleet)
    old_text = fleet.primary.served()
    mark = os.path.join(fleet.primary.home, "PWNED")
    h1, h2, h3 = fleet.hosts
    pidfile = os.path.join(h1.home, "hung.pid")
    restores = [replace_tool(h1, HUNG.replace("PIDFILE", shlex.quote(pidfile))), replace_tool(h2, GARBAGE),
                replace_tool(h3, EVIL.replace("MARK", mark))]
    try:
        commit = fleet.commit("fleet-lying-hosts")
        with FleetLoad(fleet, [old_text, "fleet-lying-hosts"]) as load:
            with Push(fleet, bound=limit + HEALTHY_PUSH) as push:
                result = push.wait()
            load.settle()
        load.report()
    finally:
        for restore in restores:
            restore()
        hung = end_hung(pidfile, h1)
    rev = commit[:12]
    lines = pusher_lines(result)
    print("\n".join(lines))
    assert hung is not None                # h1's commit did run, and hung
    # nothing a host printed ran on the primary
    assert not os.path.exists(mark) and not os.path.exists(mark + ".stderr")
    assert result.returncode != 0
    # the commit's limit ended h1's commit (its sshd answered keep-alives all along)
    assert any(line.startswith(f" !     h1 failed to commit: no answer within {limit} s (commit)")
               for line in lines), lines
    assert any(line.startswith(" !     h2 failed to commit: answered commit with something that is not JSON: ")
               for line in lines), lines
    assert any(line.startswith(" !     h3 failed to commit: answered commit with invalid previous, previous_rev")
               for line in lines), lines
    assert "-----> Rolling back h1, h2, h3 to the version each served before" in lines
    # a push with a host that never answers ends once its limit passed (Push.wait holds it to that)
    assert push.took > limit
    # every host (the three switched for real) is back on the old version
    assert fleet.lives() == {h.name: f"{APP}-{old}" for h in fleet.hosts}
    assert all(h.served() == old_text for h in fleet.hosts)
    assert load.failed() == {}
    assert all(f"{APP}-{rev}" not in " ".join(h.vassals()[0]) for h in fleet.hosts)
    assert_no_candidate_anywhere(fleet, old)
    assert journal(fleet) is None        # every host on one version: nothing left to undo


# -- a host cut off --------------------------------------------------------------------------
def push_cutting_off(fleet, host, version, phase, while_cut_off, reached=None, then=None):
    """Push a commit saying version, under load; once host runs its phase
    (or reached() says so), cut host off (and then then()). With the push
    ended (within PUSH_BOUND) and host still cut off, while_cut_off(lines of
    the push, old rev, new rev); then host comes back. No request failed on
    any host. Returns (old rev, new rev)."""
    old = same_version_everywhere(fleet)
    old_text = fleet.primary.served()
    commit = fleet.commit(version)
    rev = commit[:12]
    with FleetLoad(fleet, [old_text, version]) as load:
        with Push(fleet) as push:
            when_journal(fleet, lambda r: r.get("commit") == commit and r.get("phase") == phase, f"the {phase}")
            wait_until(reached or (lambda: running(host, phase)), 60, f"{host.name}'s {phase} to start")
            host.cut_off()
            if then:
                then()
            try:
                result = push.wait()
                lines = pusher_lines(result)
                print("\n".join(lines))
                assert result.returncode != 0
                while_cut_off(lines, old, rev)
            finally:
                host.heal()
        load.settle()
    load.report()
    assert load.failed() == {}
    return old, rev


# h3's pre-receive while the test holds it: the objects are received, the ref
# not updated, the push's connection open and waiting for h3's answer
PAUSED_HOOK = """#!/bin/sh
echo $$ > GATE.tmp && mv GATE.tmp GATE
n=0
while [ -e GATE ] && [ $n -lt 2400 ]; do sleep 0.05; n=$((n + 1)); done
[ -e GATE ] && { echo "the test pause was not released within 120 s" >&2; exit 1; }
exec REAL
"""


def pause_push(host, gate):
    """host's pre-receive (a symlink to the toolkit's) held until the test
    removes gate (it appears once the push reached the hook); returns a
    function that puts the real hook back."""
    hook = os.path.join(host.app.repo, "hooks", "pre-receive")
    real = os.readlink(hook)
    os.unlink(hook)
    with open(hook, "w") as stream:
        stream.write(PAUSED_HOOK.replace("GATE", shlex.quote(gate)).replace("REAL", shlex.quote(real)))
    os.chmod(hook, 0o755)

    def restore():
        os.unlink(hook)
        os.symlink(real, hook)
    return restore


def receiving(host):
    """host runs git-receive-pack or its hook (as its deploy account)."""
    return any(any(b"receive-pack" in arg or arg.endswith(b"pre-receive") for arg in argv[:3])
               for _pid, argv in processes_of(host.account.pw_uid))


@GROUP_B
def test_host_cut_off_during_the_push_to_it_refuses_with_no_host_changed_and_converges_when_back(fleet):
    """Cut off in the middle of the push to it, deterministically: h3's hook
    is held (the pack received, the ref not yet updated, the connection
    waiting for h3's answer) until h3's sshd is stopped, then let go (its own
    processes go on, as a partitioned host's do)."""
    h3 = fleet.hosts[2]
    gate = os.path.join(h3.home, "push.gate")

    def while_cut_off(lines, old, rev):
        # one line naming the host and the step, with what ssh said (or the step's limit), not git's hint
        [reason] = [line for line in lines if line.startswith(" !     h3 failed to receive the commit: ")]
        assert reason in (" !     h3 failed to receive the commit: unreachable (push): Timeout, server 127.0.0.1 "
                          "not responding.; aborted on every host, none changed",
                          f" !     h3 failed to receive the commit: no answer within {STEP_LIMIT} s (push); "
                          "aborted on every host, none changed"), reason
        assert any(f"refused: {reason[len(' !     '):]}" in line for line in lines), lines
        assert not any("repository exists" in line for line in lines if line.startswith(" !")), lines
        assert f"-----> Aborting {APP}-{rev} on every host" in lines
        assert not any(line.startswith("-----> Preparing") for line in lines), lines
        for host in fleet.hosts:
            assert host.live() == f"{APP}-{old}" and host.prepared_records() == []
        code, report = fleet_status(fleet)
        assert code == 1 and report["deploy"]["state"] == "interrupted"
        assert [h["host"] for h in report["hosts"] if h["error"]] == ["h3"]
    same_version_everywhere(fleet)       # (a push: before h3's hook is held)
    restore = pause_push(h3, gate)
    try:
        old, rev = push_cutting_off(fleet, h3, "fleet-push-cut", "push", while_cut_off,
                                    reached=lambda: os.path.exists(gate), then=lambda: os.unlink(gate))
    finally:
        restore()
        if os.path.exists(gate):
            os.unlink(gate)
    # h3's receive-pack went on once let go, and ended: it stored the commit, nothing deployed
    wait_until(lambda: not receiving(h3), 60, "h3's receive-pack to end")
    assert h3.live() == f"{APP}-{old}" and h3.prepared_records() == []
    lines = converges(fleet, "fleet-after-push-cut")
    assert f"-----> Rolling back the fleet deploy of {APP}-{rev} that was cut short, on every host" in lines
    assert f"-----> Rolled back: no host keeps anything of {APP}-{rev}" in lines


@GROUP_B
def test_host_cut_off_during_prepare_aborts_everywhere_in_bounded_time_and_converges_when_back(fleet):
    h3 = fleet.hosts[2]

    def while_cut_off(lines, old, rev):
        assert any(line.startswith(" !     h3 failed to prepare: unreachable (prepare): ")
                   and line.endswith("; aborted on every host, none changed") for line in lines), lines
        assert f"-----> Aborting {APP}-{rev} on every host" in lines
        assert not any(": -----> Switching" in line for line in lines)
        assert any(line.startswith("       h3    ?  unreachable (status): ") for line in lines)
        # the others never changed, and hold nothing of it
        for host in fleet.hosts[:2]:
            assert host.live() == f"{APP}-{old}" and host.prepared_records() == []
        # the fleet lock is free: deploy-status --fleet sees an interrupted deploy, h3 unknown
        code, report = fleet_status(fleet)
        assert code == 1 and report["deploy"]["state"] == "interrupted"
        assert [h["host"] for h in report["hosts"] if h["error"]] == ["h3"]
    old, rev = push_cutting_off(fleet, h3, "fleet-prepare-cut", "prepare", while_cut_off)
    # h3's own prepare went on while it was cut off: it holds a candidate
    wait_until(lambda: h3.prepared_records() == [f"{APP}-{rev}.prepared"], 60, "h3's prepared candidate")
    code, report = fleet_status(fleet)
    assert code == 1 and "unknown on h3" in report["deploy"]["what"]
    text = fleet.primary.ssh(f"deploy-status --fleet {APP}")
    assert text.stdout.splitlines()[-1].startswith(f"  INTERRUPTED fleet deploy: {APP}-{rev}, ended with the "
                                                   "fleet split")
    # the next push undoes it first (h3's candidate goes), then deploys everywhere
    lines = converges(fleet, "fleet-after-prepare-cut")
    assert f"-----> Rolling back the fleet deploy of {APP}-{rev} that was cut short, on every host" in lines
    assert f"h3: -----> aborted: {APP}-{rev}'s candidate is removed" in lines
    assert f"-----> Rolled back: no host keeps anything of {APP}-{rev}" in lines


@GROUP_C
def test_host_cut_off_during_commit_rolls_back_the_others_and_is_brought_back_by_the_next_push(fleet):
    h3 = fleet.hosts[2]

    def while_cut_off(lines, old, rev):
        assert any(line.startswith(" !     h3 failed to commit: unreachable (commit): ") for line in lines), lines
        assert "-----> Rolling back h1, h2, h3 to the version each served before" in lines
        assert any(line.startswith(" !     h3 failed to commit: ") and line.endswith(
            "rolled back h1, h2 to the version each served before; could NOT undo it on h3 (the next "
            "push to the primary undoes what it left)") for line in lines), lines
        for host in fleet.hosts[:2]:
            assert host.live() == f"{APP}-{old}"
        assert journal(fleet)["hosts"]["h3"] == "unknown"
    old, rev = push_cutting_off(fleet, h3, "fleet-commit-cut", "commit", while_cut_off)
    # h3 went on with its commit while cut off: it serves the version the others rolled back
    wait_until(lambda: h3.live() == f"{APP}-{rev}", 60, "h3's own commit to end")
    code, report = fleet_status(fleet)
    assert code == 1 and report["split"] and report["deploy"]["state"] == "interrupted"
    assert [(h["host"], h["live"]) for h in report["hosts"]] == [
        ("h1", f"{APP}-{old}"), ("h2", f"{APP}-{old}"), ("h3", f"{APP}-{rev}")]
    lines = converges(fleet, "fleet-after-commit-cut")
    assert f"-----> Rolling back the fleet deploy of {APP}-{rev} that was cut short, on every host" in lines
    assert any(line.startswith(f"h3: -----> {APP}-{old} is live: serving") for line in lines), lines


# -- the controller dies ---------------------------------------------------------------------
def branch(home):
    """refs/heads/main in home's app.git (the primary's, or the controller's copy)."""
    return subprocess.run(["git", "-c", "safe.directory=*", f"--git-dir={os.path.join(home, APP + '.git')}",
                           "rev-parse", "--verify", "-q", "refs/heads/main"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL).stdout.strip()


def controller_pids(fleet, record):
    """The primary's hook (a pre-receive run by git as the primary's account),
    the controller's deploy-fleet and every process of the playbook's session."""
    uids = {fleet.primary.account.pw_uid, pwd.getpwnam(fleet.controller_user).pw_uid}
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid not in uids:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                argv = stream.read().split(b"\0")
            if any(arg.endswith((b"pre-receive", b"deploy-fleet")) for arg in argv[:2]) or \
                    os.getsid(int(entry)) == record["session"]:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


@WITH_DEPLOYS
def test_controller_killed_during_commit_is_rolled_back_by_the_next_push_which_says_so(fleet):
    old = same_version_everywhere(fleet)
    old_commit = branch(fleet.primary.home)
    assert old_commit.startswith(old)
    old_text = fleet.primary.served()
    commit = fleet.commit("fleet-controller-killed")
    rev = commit[:12]
    with FleetLoad(fleet, [old_text, "fleet-controller-killed"]) as load:
        with Push(fleet) as push:
            when_journal(fleet, lambda r: r.get("commit") == commit and "committed" in r.get("hosts", {}).values(),
                         "a host to have committed")
            record = journal(fleet)
            pids = controller_pids(fleet, record)
            assert record["controller"] in pids and record["session"] in pids
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            result = push.wait()
            print("\n".join(pusher_lines(result)))
        load.settle()
    load.report()
    assert load.failed() == {}
    assert result.returncode != 0
    left = journal(fleet)
    assert left["phase"] == "commit" and "committed" in left["hosts"].values()
    # the journal names the branch; the controller's copy of it is the primary's (the push was refused)
    assert left["ref"] == "refs/heads/main"
    assert branch(fleet.controller_home) == branch(fleet.primary.home) == old_commit
    committed = sorted(h for h, state in left["hosts"].items() if state == "committed")
    code, report = fleet_status(fleet)
    assert code == 1 and report["deploy"]["state"] == "interrupted"
    assert report["deploy"]["what"].startswith(f"{APP}-{rev}, cut short in its commit phase")
    assert f"committed on {', '.join(committed)}" in report["deploy"]["what"]
    lines = converges(fleet, "fleet-after-controller-killed")
    assert any(line.startswith(f" !     a fleet deploy was cut short (its controller died, or a host did not "
                               f"answer): {APP}-{rev}, cut short in its commit phase") for line in lines), lines
    assert f"-----> Rolling back the fleet deploy of {APP}-{rev} that was cut short, on every host" in lines
    assert f"-----> Rolled back: no host keeps anything of {APP}-{rev}" in lines
    for host in committed:
        assert any(line.startswith(f"{host}: -----> Switching ") and f"to {APP}-{old}" in line
                   for line in lines), (host, lines)


# The primary's settings (not its controller's) that make the limit it gives
# its controller short: the fleet's own bounds, each a second or so; the
# limit is then mostly fleet.PLAYBOOK_MARGIN (3 x 20 s).
SHORT_BOUNDS = {"DEPLOY_LOCK_TIMEOUT": "1", "DEPLOY_FLEET_TIMEOUT": "1", "DEPLOY_FLEET_PREPARE_TIMEOUT": "1",
                "DEPLOY_READY_TIMEOUT": "1", "DEPLOY_PROBE_TIMEOUT": "1", "DEPLOY_WATCH": "0",
                "DEPLOY_WATCH_MAX": "0", "DEPLOY_DRAIN_TIMEOUT": "0"}


def deploy_fleet_pid(fleet, commit):
    """The controller's deploy-fleet of commit, once it runs."""
    return next((pid for pid, argv in processes_of(pwd.getpwnam(fleet.controller_user).pw_uid)
                 if any(arg.endswith(b"deploy-fleet") for arg in argv[:2]) and commit.encode() in argv), None)


@GROUP_A
def test_a_controller_that_hangs_holds_the_pusher_no_longer_than_the_fleets_own_limits(fleet):
    """The primary's ssh to its controller has a limit of its own, what the
    fleet's bounds add up to (fleet.deploy_limit): a controller that hangs
    (here: stopped, SIGSTOP, while it waits for its fleet lock, which the
    test holds) is given up on then, the pusher told so in one line; that
    controller, once it goes on, does nothing (the primary's --start-by passed)."""
    old = same_version_everywhere(fleet)
    old_commit = branch(fleet.primary.home)
    commit = fleet.commit("fleet-controller-hangs")
    for name, value in SHORT_BOUNDS.items():
        fleet.set_setting(name, value, controller=False)
    lock_path = os.path.join(fleet.controller_home, "run", f"{APP}.fleet.lock")
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    shutil.chown(lock_path, fleet.controller_user, fleet.controller_user)
    stopped = None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.pwrite(lock, b"a hung fleet deploy (the test)\n", 0)
        limit = deploy_limit(load({"HOME": fleet.primary.home, "PATH": os.environ["PATH"]}), len(fleet.hosts))
        assert limit == 1 + 3 + 1 + 1 + (3 + 3 * 3) + 1 + 3 * 20     # SHORT_BOUNDS: a switch 3 s
        with Push(fleet, bound=limit + HEALTHY_PUSH) as push:
            stopped = wait_until(lambda: deploy_fleet_pid(fleet, commit), 60, "the controller's deploy-fleet")
            os.kill(stopped, signal.SIGSTOP)      # it cannot have taken the lock: the test holds it
            result = push.wait()
    finally:
        os.close(lock)
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        for name in SHORT_BOUNDS:
            fleet.set_setting(name, str(STEP_LIMIT) if name == "DEPLOY_FLEET_TIMEOUT" else None, controller=False)
    lines = pusher_lines(result)
    print("\n".join(lines))
    assert result.returncode != 0
    assert limit <= push.took < limit + HEALTHY_PUSH
    assert any(line.endswith(f"fleet deploy of {APP}-{commit[:12]}: the fleet controller did not answer within "
                             f"{limit} s (what the fleet's own limits add up to: docs/fleet-faults.md); refused; "
                             "what it did is in its journal, which the next push reads") for line in lines), lines
    # let go, the hung controller finds the primary stopped waiting: it ends, having done nothing
    wait_until(lambda: not os.path.exists(f"/proc/{stopped}"), 60, "the hung controller to end")
    assert journal(fleet) is None
    assert fleet.lives() == {h.name: f"{APP}-{old}" for h in fleet.hosts}
    assert branch(fleet.primary.home) == branch(fleet.controller_home) == old_commit


# -- a slow host -------------------------------------------------------------------------------
@GROUP_C
def test_a_setup_longer_than_the_step_limit_is_a_slow_host_not_a_dead_one(fleet):
    same_version_everywhere(fleet)
    old_text = fleet.primary.served()
    commit = fleet.commit("fleet-slow-h2", environment=f"SLOW_SETUP_ON=h2\nSLOW_SETUP_SECONDS={SLOW_SETUP}\n")
    rev = commit[:12]
    with FleetLoad(fleet, [old_text, "fleet-slow-h2"]) as load:
        started = time.monotonic()
        result = fleet.push()
        took = time.monotonic() - started
        load.settle()
    load.report()
    print(f"the push took {took:.1f} s")
    assert result.returncode == 0, result.stderr
    assert load.failed() == {}
    # h2's setup did run that long, silent, inside the prepare: a fleet that timed a prepare by the step
    # limit or by ssh's keep-alives would have failed it long before
    assert SLOW_SETUP > 3 * max(STEP_LIMIT, KEEP_ALIVE_BOUND)
    assert took > SLOW_SETUP
    lines = pusher_lines(result)
    setup = [line for line in lines if line.startswith("h2:        setup done (")]
    assert setup and float(setup[0].split("(")[1].split()[0]) >= SLOW_SETUP, setup
    assert fleet.lives() == {h.name: f"{APP}-{rev}" for h in fleet.hosts}
    assert_no_candidate_anywhere(fleet, rev)
    assert journal(fleet) is None


@GROUP_B
def test_a_deploy_left_in_the_journal_whose_push_was_accepted_is_finished_by_the_next_push(fleet):
    """The journal a deploy leaves when it ended without knowing what every
    host serves (its status could not be read) while its push was accepted
    (the playbook succeeded): the primary's branch names its commit, and the
    primary hands its branch to the controller with each request, so the
    next push finishes it (nothing undone) instead of rolling every host
    back to the version before it."""
    rev = same_version_everywhere(fleet)
    commit = branch(fleet.primary.home)
    assert commit.startswith(rev)
    path = os.path.join(fleet.controller_home, "run", f"{APP}.fleet.journal")
    fleet_journal.write(path, {"app": APP, "commit": commit, "ref": "refs/heads/main", "phase": "ended",
                               "verdict": "unknown", "started": time.time(),
                               "hosts": {h.name: "committed" for h in fleet.hosts}})
    shutil.chown(path, fleet.controller_user, fleet.controller_user)
    code, report = fleet_status(fleet)
    assert code == 1 and report["deploy"]["state"] == "interrupted"
    lines = converges(fleet, "fleet-after-accepted")
    assert f"-----> Finished: refs/heads/main names {rev}, the push was accepted; nothing to undo" in lines
    assert not any("Rolling back" in line or "Undoing" in line for line in lines), lines
