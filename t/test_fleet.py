"""A fleet of three hosts, all or nothing: three deploy accounts on this
machine, each with its own home, sshd (port and host key), Emperor, nginx
and login shell git-shell, the toolkit installed on each by
share/fleet/install.yml over real ssh, host 1 the primary. A developer's
`git push` to host 1 runs the fleet deploy through Ansible; every setting is
the default (the watch is the default 3 s).

One such world serves every test of this file (conftest's fleet_world,
built once per pytest process); each test first brings the fleet to the
state it starts from."""
import json
import os
import pwd
import subprocess
import time

import pytest

from conftest import must_fail
from fleet_world import (APP, WHEELS, FleetLoad, assert_no_candidate_anywhere, pusher_lines,
                         same_version_everywhere, steady_traffic)

# under xdist its tests run on one worker, with that worker's fleet world (and
# then one fault test of test_fleet_faults.py, which balances the groups); the
# fault tests' other groups run on others, each with its own world, side by side
pytestmark = [pytest.mark.fleet, pytest.mark.ssh, pytest.mark.emperor, pytest.mark.load,
              pytest.mark.xdist_group("fleet-deploys")]


@pytest.fixture(scope="module")
def fleet(fleet_world):
    fleet_world.set_setting("DEPLOY_FLEET_BATCH", None)   # every setting its default
    return fleet_world


def refs(host, pattern):
    result = subprocess.run(["git", "--git-dir", host.app.repo, "for-each-ref", "--format=%(refname) %(objectname)",
                             pattern], capture_output=True, text=True, check=True)
    return dict(line.split() for line in result.stdout.splitlines())


# -- installed by the playbook ------------------------------------------------------
def fleet_key_ssh(fleet, host, *command, source=None):
    """ssh to host's deploy account with the fleet key (read as root)."""
    argv = ["ssh", "-p", str(host.box.ssh_port), "-i", os.path.join(fleet.controller_home, ".ssh", "uwsgi-deploy-fleet"),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"] + (["-b", source] if source else [])
    return subprocess.run(argv + [f"{host.user}@127.0.0.1", *command], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_install_playbook_made_every_host_ready_and_the_primary_its_controller(fleet):
    primary = fleet.primary
    controller = pwd.getpwnam(fleet.controller_user)
    key_file = os.path.join(fleet.controller_home, ".ssh", "uwsgi-deploy-fleet")
    with open(key_file + ".pub") as stream:
        fleet_key = " ".join(stream.read().split()[:2])
    # the fleet key is the controller account's: no app (they run as the deploy account) can read it
    assert os.stat(key_file).st_uid == controller.pw_uid and os.stat(fleet.controller_home).st_mode & 0o077 == 0
    assert not os.path.exists(os.path.join(primary.home, ".ssh", "uwsgi-deploy-fleet"))
    read = subprocess.run(["runuser", "-u", primary.user, "--", "cat", key_file], capture_output=True, text=True)
    assert read.returncode != 0 and "Permission denied" in read.stderr
    for host in fleet.hosts:
        for tool in ("deploy-version", "deploy-status", "pre-receive"):
            assert os.access(os.path.join(host.bin_dir, tool), os.X_OK)
        assert os.path.islink(os.path.join(host.app.repo, "hooks", "pre-receive"))
        # a production install: the tools' requirements vendored, no venv, no test tools (requirements-dev.txt)
        toolkit = os.path.join(host.box.root, "toolkit")
        assert os.access(os.path.join(host.home, "lib", "uwsgi-deploy", "site", "bin", "uv"), os.X_OK)
        assert os.path.isdir(os.path.join(toolkit, "build", "site", "requests"))
        assert not os.path.exists(os.path.join(toolkit, ".venv"))
        assert not os.path.exists(os.path.join(toolkit, "build", "site", "pytest"))
        with open(os.path.join(host.home, ".ssh", "authorized_keys")) as stream:
            assert (f'restrict,command="deploy-gate --key fleet --role fleet --app {APP}",from="127.0.0.1" '
                    f"{fleet_key} deploy-key:fleet\n") in stream.read()
    with open(os.path.join(fleet.controller_home, ".ssh", "known_hosts")) as stream:
        known = stream.read()
    for host in fleet.hosts:   # each host's own key, read from its file by install.yml
        with open(os.path.join(host.box.root, "keys", "host.pub")) as stream:
            assert f"[127.0.0.1]:{host.box.ssh_port} {' '.join(stream.read().split()[:2])}" in known
    for inventory in (primary.app.fleet_inventory, os.path.join(fleet.controller_home, f"{APP}.inventory")):
        with open(inventory) as stream:
            text = stream.read()
        assert "ansible_user" not in text and "root" not in text and fleet.admin not in text   # no admin's vars
        assert all(f"{h.name} ansible_host=127.0.0.1 ansible_port={h.box.ssh_port} deploy_user={h.user}\n" in text
                   for h in fleet.hosts)
    inventory = primary.app.fleet_inventory
    assert oct(os.stat(inventory).st_mode & 0o777) == "0o600" and os.stat(inventory).st_uid == primary.account.pw_uid
    assert not any(os.path.exists(h.app.fleet_inventory) for h in fleet.hosts[1:])   # only the primary drives
    # the requirements' wheels were fetched once, here, and shipped: every host installed from them
    assert "Running install.sh --user deploy_user --wheels wheels on every host" in fleet.install_output
    fetched = sorted(os.listdir(WHEELS))
    assert any(name.startswith("uv-") for name in fetched)
    for host in fleet.hosts:
        assert sorted(os.listdir(os.path.join(host.box.root, "toolkit", "wheels"))) == fetched, host.name
    # Procfile clocks and cron run on the primary only (no `singletons` group)
    for host in fleet.hosts:
        config = os.path.join(host.home, "deploy.conf")
        with open(config) as stream:
            assert f"DEPLOY_SINGLETONS={'yes' if host is primary else 'no'}\n" in stream.read()
        assert os.stat(config).st_uid == host.account.pw_uid and os.stat(config).st_mode & 0o077 == 0


def test_the_fleet_key_runs_a_fleet_deploys_commands_only(fleet):
    for host in fleet.hosts:
        assert fleet_key_ssh(fleet, host, f"deploy-status {APP} --json").returncode == 0
        for command, refused in ((f"deploy-run {APP} -- sh -c id", "deploy-run"), ("sh -c id", "sh"),
                                 ("id", "id"), (f"deploy-config {APP}", "deploy-config"),
                                 (f"deploy-logs {APP}", "deploy-logs")):
            result = fleet_key_ssh(fleet, host, command)
            assert result.returncode == 1 and "uid=" not in result.stdout + result.stderr, result
            assert result.stderr == f"deploy-gate: key fleet (fleet) may not run {refused}: role fleet runs " \
                                    "git-receive-pack, deploy-version, deploy-status\n"
        # no command: no shell either, only what the key may run
        login = fleet_key_ssh(fleet, host)
        assert login.returncode == 0 and login.stdout.startswith(f"Key fleet (fleet) for {APP} may run:")
        # from another address than the primary's, sshd does not take the key at all
        elsewhere = fleet_key_ssh(fleet, host, f"deploy-status {APP}", source="127.0.0.2")
        assert elsewhere.returncode == 255 and "Permission denied" in elsewhere.stderr


# -- a push to the primary ---------------------------------------------------------------
def test_a_push_deploys_the_same_rev_on_every_host_and_clients_lose_nothing(fleet):
    old = same_version_everywhere(fleet)
    commit = fleet.commit("fleet-v2")
    rev = commit[:12]
    with FleetLoad(fleet, [fleet.primary.served(), "fleet-v2"]) as load:
        started = time.monotonic()
        result = fleet.push()
        print(f"the fleet push took {time.monotonic() - started:.1f} s")
        load.settle()
    load.report()
    assert result.returncode == 0, result.stderr
    assert load.failed() == {}
    assert fleet.lives() == {h.name: f"{APP}-{rev}" for h in fleet.hosts}
    assert all(h.served() == "fleet-v2" for h in fleet.hosts)
    assert all(load.fast[h.name].versions["fleet-v2"] > 0 for h in fleet.hosts)
    # each host switched once: none of its clients went back to the old version
    assert all(load.fast[h.name].regressions == [] for h in fleet.hosts)
    lines = pusher_lines(result)
    # each host's stage lines, prefixed with the host
    for host in fleet.hosts:
        for stage in ("-----> Checking out", "-----> Running setup", "-----> Probing", "-----> Switching",
                      "-----> Watching", f"-----> Retiring {APP}-{old}"):
            assert any(line.startswith(f"{host.name}: {stage}") for line in lines), (host.name, stage)
        assert f"{host.name}:        setup ran on {host.name}" in lines   # indented under its stage
    assert f"-----> {APP}-{rev} is live on every host of the fleet" in lines
    assert f"       {APP}: every host serves {APP}-{rev}" in lines
    # prepared everywhere before any host switched
    last_prepared = max(i for i, line in enumerate(lines) if "is prepared: it answers /ping" in line)
    first_switch = min(i for i, line in enumerate(lines) if ": -----> Switching" in line)
    assert last_prepared < first_switch
    for host in fleet.hosts:
        with open(host.box.settings.log_file) as stream:
            last = stream.read().splitlines()[-1]
        assert last.startswith(f"{APP}-{rev} ") and f"commit={commit}" in last and "via=fleet" in last
        # the commit reached every repository under the fleet ref, which deployed nothing by itself
        assert refs(host, "refs/fleet/")["refs/fleet/candidate"] == commit
    assert refs(fleet.primary, "refs/heads/")["refs/heads/main"] == commit
    assert all("refs/heads/main" not in refs(h, "refs/heads/") for h in fleet.hosts[1:])
    assert_no_candidate_anywhere(fleet, rev)


def test_setup_failing_on_host_2_refuses_the_push_and_no_host_changes(fleet):
    old = same_version_everywhere(fleet)
    before_main = refs(fleet.primary, "refs/heads/")["refs/heads/main"]
    commit = fleet.commit("fleet-broken-on-h2", environment="BREAK_SETUP_ON=h2\n")
    rev = commit[:12]
    result = fleet.push()
    must_fail(result, 1, f"remote: pre-receive: fleet deploy of {APP}-{rev} refused: h2 failed to prepare: ")
    assert "pre-receive hook declined" in result.stderr
    lines = pusher_lines(result)
    assert "h2:        setup breaks on h2, as this commit asks" in lines
    assert (" !     h2 failed to prepare: setup: setup exited with status 3; aborted on every host, "
            "none changed") in lines
    assert f"-----> Aborting {APP}-{rev} on every host" in lines
    assert not any(": -----> Switching" in line for line in lines)
    assert fleet.lives() == {h.name: f"{APP}-{old}" for h in fleet.hosts}
    old_text = fleet.primary.served()
    assert all(h.served() == old_text for h in fleet.hosts)
    assert_no_candidate_anywhere(fleet, old)
    assert refs(fleet.primary, "refs/heads/")["refs/heads/main"] == before_main
    assert [line for line in lines if line.startswith("pre-receive: ")] == [
        f"pre-receive: fleet deploy of {APP}-{rev} refused: h2 failed to prepare: setup: setup exited with "
        "status 3; aborted on every host, none changed"]


def test_host_3_crashing_in_its_watch_rolls_every_host_back(fleet):
    old = same_version_everywhere(fleet)
    old_text = fleet.primary.served()
    commit = fleet.commit("fleet-crashes-on-h3", environment="CRASH_ON=h3\n")
    rev = commit[:12]
    with FleetLoad(fleet, [old_text, "fleet-crashes-on-h3"]) as load:
        started = time.monotonic()
        result = fleet.push()
        print(f"the fleet push took {time.monotonic() - started:.1f} s")
        load.settle()
    print("what the clients saw:")
    load.report()
    must_fail(result, 1, f"remote: pre-receive: fleet deploy of {APP}-{rev} refused: h3 failed to commit: watch: ")
    lines = pusher_lines(result)
    assert any(line.startswith(" !     h3 failed to commit: watch: ") and line.endswith(
        "; rolled back h1, h2 to the version each served before") for line in lines), lines
    assert "-----> Rolling back h1, h2 to the version each served before" in lines
    assert "h3:  !     switched back to " + f"{APP}-{old}" in lines
    # every host ends on the old version, and nothing was lost on the way
    assert fleet.lives() == {h.name: f"{APP}-{old}" for h in fleet.hosts}
    assert all(h.served() == old_text for h in fleet.hosts)
    assert load.failed() == {}
    # hosts 1 and 2 did serve the new version for their whole watch before the rollback
    assert load.fast["h1"].versions["fleet-crashes-on-h3"] > 0
    assert load.fast["h2"].versions["fleet-crashes-on-h3"] > 0
    for host in fleet.hosts[:2]:
        with open(host.box.settings.log_file) as stream:
            last = stream.read().splitlines()[-1]
        assert last.startswith(f"{APP}-{old} ") and f"previous={APP}-{rev}" in last
    assert_no_candidate_anywhere(fleet, old)


def test_in_batches_a_failed_batch_stops_the_ones_after_it(fleet):
    old = same_version_everywhere(fleet)
    old_text = fleet.primary.served()
    fleet.set_setting("DEPLOY_FLEET_BATCH", "1")
    try:
        logged = {h.name: len(open(h.box.settings.log_file).read().splitlines()) for h in fleet.hosts}
        commit = fleet.commit("fleet-crashes-on-h2", environment="CRASH_ON=h2\n")
        rev = commit[:12]
        with FleetLoad(fleet, [old_text, "fleet-crashes-on-h2"]) as load:
            result = fleet.push()
            load.settle()
        load.report()
    finally:
        fleet.set_setting("DEPLOY_FLEET_BATCH", None)
    assert load.failed() == {}
    must_fail(result, 1, f"remote: pre-receive: fleet deploy of {APP}-{rev} refused: h2 failed to commit: watch: ")
    lines = pusher_lines(result)
    committing = [line for line in lines if line.startswith(f"-----> Committing {APP}-{rev} on ")]
    assert committing == [f"-----> Committing {APP}-{rev} on h1 (switch, watch, retire, link)",
                          f"-----> Committing {APP}-{rev} on h2 (switch, watch, retire, link)"]
    assert "-----> Rolling back h1 to the version each served before" in lines
    assert f"h3: -----> aborted: {APP}-{rev}'s candidate is removed" in lines
    assert fleet.lives() == {h.name: f"{APP}-{old}" for h in fleet.hosts}
    # h3 never switched: its deploy.log did not move
    assert len(open(fleet.hosts[2].box.settings.log_file).read().splitlines()) == logged["h3"]
    assert_no_candidate_anywhere(fleet, old)


# -- what the fleet serves --------------------------------------------------------------------
def test_deploy_status_fleet_over_ssh_shows_each_host_and_flags_a_split(fleet):
    old = same_version_everywhere(fleet)
    primary, third = fleet.primary, fleet.hosts[2]
    result = primary.ssh(f"deploy-status --fleet {APP}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{APP} (fleet of 3)"] + [
        f"  {h.name}    {APP}-{old}  up" for h in fleet.hosts] + [f"  every host serves {APP}-{old}"]
    # a push straight to host 3 deploys there only (it is no primary): a split fleet
    other = fleet.commit("pushed-to-h3-only")[:12]
    old_text = primary.served()
    with steady_traffic(fleet, [old_text, "pushed-to-h3-only"]) as traffic:
        assert fleet.push(third).returncode == 0
    try:
        result = primary.ssh(f"deploy-status --fleet {APP} --json")
        assert result.returncode == 1, result.stderr
        [report] = json.loads(result.stdout)["fleets"]
        assert report["split"] is True and report["live"] is None
        assert [(h["host"], h["live"], h["answers_ping"]) for h in report["hosts"]] == [
            ("h1", f"{APP}-{old}", True), ("h2", f"{APP}-{old}", True), ("h3", f"{APP}-{other}", True)]
        text = primary.ssh(f"deploy-status --fleet {APP}")
        assert text.returncode == 1
        assert text.stdout.splitlines()[-1] == (f"  SPLIT: the hosts disagree: {APP}-{old} on h1, h2; "
                                                f"{APP}-{other} on h3")
    finally:
        with steady_traffic(fleet, ["pushed-to-h3-only", old_text]) as back_traffic:
            back = third.ssh(f"deploy-version {APP} {old}")
        assert back.returncode == 0, back.stderr
    assert primary.ssh(f"deploy-status --fleet {APP}").returncode == 0
    assert traffic.failed() == {} and back_traffic.failed() == {}
