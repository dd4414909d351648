"""Keys scoped to apps and roles, over real ssh: a deploy account with
git-shell, the toolkit as `make install` puts it, an Emperor, nginx and a
real sshd; keys added with deploy-keys, run as the account. Two apps, alpha
and beta; one operate key for each, a push-only key and a run key for alpha,
and the key the account had before (a plain authorized_keys line).

One world serves the file; each test keeps its own meaning."""
import os
import subprocess

import pytest

from accounts import create_deploy_account, remove_account, run_checked, serve_over_ssh
from sandbox import Sandbox
from uwsgi_deploy.deploylog import read_log

pytestmark = [pytest.mark.ssh, pytest.mark.emperor, pytest.mark.xdist_group("keys")]   # one world, in order

APPS = ("alpha", "beta")


class World:
    def __init__(self, box, account, legacy_ssh):
        self.box, self.account, self.user = box, account, account.pw_name
        self.legacy_ssh = legacy_ssh
        self.bin_dir = None
        self.ssh_commands = {"legacy": legacy_ssh}

    def deploy_keys(self, *args, input=None):
        return subprocess.run(["runuser", "-u", self.user, "--", os.path.join(self.bin_dir, "deploy-keys"), *args],
                              input=input, capture_output=True, text=True, timeout=60, env=self.box.environ)

    def add_key(self, name, *args):
        """A new key pair, added with deploy-keys add NAME ARGS."""
        path = os.path.join(self.box.root, "keys", name)
        run_checked("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@laptop", "-f", path)
        with open(path + ".pub") as stream:
            result = self.deploy_keys("add", name, *args, input=stream.read())
        assert result.returncode == 0, result.stderr
        self.ssh_commands[name] = self.legacy_ssh.replace(os.path.join(self.box.root, "keys", "client"), path)
        return result.stdout

    def ssh(self, key, command=None, input=None):
        argv = self.ssh_commands[key].split() + [f"{self.user}@127.0.0.1"] + ([command] if command else [])
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=300,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def push(self, key, app, version):
        """Commit version of app and push it with key; (CompletedProcess, commit)."""
        repo = self.box.source_repo("src-" + app)
        commit = self.box.commit_app(version, repo=repo)
        result = self.box.git(repo, "push", "--force", f"{self.user}@127.0.0.1:{app}.git", "main",
                              env={"GIT_SSH_COMMAND": self.ssh_commands[key]}, check=False)
        return result, commit

    def logged(self, app):
        return read_log(self.box.settings.log_file, app)


@pytest.fixture(scope="module")
def world():
    box = Sandbox()
    account = create_deploy_account(box)
    try:
        ssh, bin_dir = serve_over_ssh(box, account, APPS)
        w = World(box, account, ssh)
        w.bin_dir = bin_dir
        # these tests are about who may do what, not about the deploy: a short
        # post-switch watch keeps each push and rollback quick (the default is 3 s)
        conf = os.path.join(box.home, "deploy.conf")
        with open(conf, "w") as stream:
            stream.write("DEPLOY_WATCH=0.3\n")
        os.chown(conf, account.pw_uid, account.pw_gid)
        w.add_key("alpha-ops", "--role", "operate", "--app", "alpha")
        w.add_key("beta-ops", "--role", "operate", "--app", "beta")
        w.add_key("alpha-viewer", "--role", "push", "--app", "alpha")
        w.add_key("alpha-runner", "--role", "run", "--app", "alpha")
        yield w
    finally:
        box.stop()
        remove_account(account)


def refusal(result, key, role, command, app):
    """The one line a refusal prints, and its status (1)."""
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.startswith("deploy-gate: ")]
    assert lines and lines[0].startswith(f"deploy-gate: key {key} ({role}) may not run {command}"
                                         + (f" for {app}" if app else "")), result.stderr
    return lines[0]


def test_each_key_pushes_and_operates_its_own_app_and_is_refused_the_other(world):
    for key, app, version in (("alpha-ops", "alpha", "alpha-first"), ("alpha-ops", "alpha", "alpha-by-alpha-ops"),
                              ("beta-ops", "beta", "beta-by-beta-ops")):
        result, commit = world.push(key, app, version)
        assert result.returncode == 0, result.stderr
        assert f"{app}-{commit[:12]} is live" in result.stderr
        # deploy.log names the key that pushed
        assert (world.logged(app)[-1].commit, world.logged(app)[-1].key) == (commit, key)
        assert world.box.get("/", headers={"Host": app}).text == version
    for key, role, other in (("alpha-ops", "operate", "beta"), ("beta-ops", "operate", "alpha")):
        before = world.logged(other)
        result, _ = world.push(key, other, "intruder")
        assert result.returncode != 0
        [line] = [line for line in result.stderr.splitlines() if line.startswith("deploy-gate: ")]
        assert line == (f"deploy-gate: key {key} ({role}) may not run git-receive-pack for {other}: "
                        f"its apps are {'alpha' if other == 'beta' else 'beta'}")
        assert world.logged(other) == before
        for command in (f"deploy-status {other}", f"deploy-logs {other}", f"deploy-config {other}",
                        f"deploy-version --previous {other}", f"deploy-cleanup --app {other}"):
            result = world.ssh(key, command)
            refusal(result, key, role, command.split()[0], other)
            assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
        assert world.box.get("/", headers={"Host": other}).text == f"{other}-by-{other}-ops"
    # each operates its own: status shows its app only, config and rollback work
    status = world.ssh("alpha-ops", "deploy-status --json")
    assert status.returncode == 0, status.stderr
    assert '"beta"' not in status.stdout and '"alpha"' in status.stdout
    config = world.ssh("alpha-ops", "deploy-config alpha set GREETING", input="hello\n")
    assert config.returncode == 0, config.stderr
    assert world.ssh("alpha-ops", "deploy-config alpha").stdout == "GREETING\n"
    back = world.ssh("alpha-ops", "deploy-version --previous alpha")
    assert back.returncode == 0, back.stderr
    assert world.logged("alpha")[-1].key == "alpha-ops" and world.logged("alpha")[-1].via == "rollback"
    assert world.box.get("/", headers={"Host": "alpha"}).text == "alpha-first"


def test_a_push_key_pushes_and_looks_but_changes_nothing_else(world):
    result, commit = world.push("alpha-viewer", "alpha", "alpha-by-viewer")
    assert result.returncode == 0, result.stderr
    assert world.logged("alpha")[-1].key == "alpha-viewer"
    assert world.ssh("alpha-viewer", "deploy-status alpha").returncode == 0
    assert world.ssh("alpha-viewer", "deploy-logs alpha -n 1").returncode == 0
    for command in ("deploy-config alpha", "deploy-version --previous alpha", "deploy-run alpha -- id",
                    "deploy-cleanup --app alpha"):
        line = refusal(world.ssh("alpha-viewer", command), "alpha-viewer", "push", command.split()[0], None)
        assert line.endswith("role push runs git-receive-pack, git-upload-pack, deploy-status, deploy-logs")
    assert world.box.get("/", headers={"Host": "alpha"}).text == "alpha-by-viewer"
    # a plain shell, and what a shell would make of the line, are refused too
    for command in ("sh -c id", "bash", "deploy-status alpha; id", "deploy-status $(id)"):
        result = world.ssh("alpha-viewer", command)
        assert result.returncode == 1 and "uid=" not in result.stdout + result.stderr, result
    # an interactive login lists what the key may run, nothing else
    listing = world.ssh("alpha-viewer")
    assert listing.returncode == 0
    assert listing.stdout.splitlines()[0] == "Key alpha-viewer (push) for alpha may run:"
    assert "deploy-run" not in listing.stdout and "deploy-status" in listing.stdout


def test_a_run_key_runs_commands_for_its_app_only(world):
    result = world.ssh("alpha-runner", "deploy-run alpha -- id -un")
    assert result.returncode == 0, result.stderr
    assert result.stdout == world.user + "\n"
    refusal(world.ssh("alpha-runner", "deploy-run beta -- id"), "alpha-runner", "run", "deploy-run", "beta")
    refusal(world.ssh("alpha-ops", "deploy-run alpha -- id"), "alpha-ops", "operate", "deploy-run", None)


def test_the_key_the_account_had_before_works_as_it_did(world):
    result, commit = world.push("legacy", "beta", "beta-by-legacy")
    assert result.returncode == 0, result.stderr
    assert world.logged("beta")[-1].commit == commit and world.logged("beta")[-1].key is None
    assert world.ssh("legacy", "deploy-run alpha -- id -un").stdout == world.user + "\n"
    listed = world.deploy_keys("list")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "(unscoped)", "alpha-ops", "beta-ops", "alpha-viewer", "alpha-runner"]


def test_from_and_remove_are_enforced_by_sshd(world):
    world.add_key("elsewhere", "--role", "push", "--app", "alpha", "--from", "192.0.2.1")
    refused = world.ssh("elsewhere", "deploy-status alpha")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    world.add_key("gone", "--role", "push", "--app", "alpha")
    assert world.ssh("gone", "deploy-status alpha").returncode == 0
    removed = world.deploy_keys("remove", "gone")
    assert removed.returncode == 0 and removed.stdout == "removed key gone\n"
    assert world.ssh("gone", "deploy-status alpha").returncode == 255
    assert world.deploy_keys("remove", "elsewhere").returncode == 0
