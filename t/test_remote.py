"""Operating from a laptop: the operator commands over ssh with the push key,
through the deploy account's git-shell, against the toolkit as `make install`
puts it in the account's home, an Emperor running as that account, nginx, and
a real sshd. Default settings: nothing in ~/deploy.conf.

One such world serves the whole file (an account, sshd and an install are
slow to make); each test sets up the state it judges itself."""
import json
import os
import re
import stat
import subprocess
import threading
import time

import pytest

from load import BUSY_INI, BusyLoad
from accounts import create_deploy_account, install_toolkit, remove_account, run_checked, start_sshd
from sandbox import TEST_APP, Sandbox
from uwsgi_deploy.inventory import versions_on_disk
from sandbox_server import wait_until
from uwsgi_deploy.shell_commands import COMMANDS

# an app that refuses to start when its environment says so
CRASHABLE_APP = ("import os\nif os.environ.get('CRASH_AT_IMPORT'):\n"
                 "    raise RuntimeError('asked to crash')\n") + TEST_APP
# setup leaves a trace of every run, and a virtualenv, as a real app's does
SETUP = "#!/bin/sh\nset -e\necho ran >> setup-runs\n/usr/bin/python3 -m venv --without-pip .venv\n"
# a value with what a uWSGI ini or python-dotenv would mangle if it were not escaped
SECRET = "s3cr3t-Zq9 p@ss %d 50%off $HOME @(file) 'single' \"double\" back\\slash ü #not-a-comment"


class Remote:
    def __init__(self, box, account, ssh):
        self.box, self.account, self.ssh_command = box, account, ssh
        self.user = account.pw_name
        self.bin_dir = None

    def ssh(self, command=None, input=None, timeout=300):
        """`ssh ACCOUNT@127.0.0.1 [COMMAND]` with the push key (no terminal)."""
        argv = self.ssh_command.split() + [f"{self.user}@127.0.0.1"] + ([command] if command else [])
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def push(self, app="app", refspec="main", repo=None):
        return self.box.git(repo or self.repo(app), "push", "--force", f"{self.user}@127.0.0.1:{app}.git",
                            refspec, env={"GIT_SSH_COMMAND": self.ssh_command}, check=False)

    def repo(self, app):
        return self.box.source_repo("src-" + app)

    def deploy(self, app, version, extra=None):
        """Commit and push version of app; returns its rev once it is live."""
        commit = self.box.commit_app(version, extra=extra, repo=self.repo(app))
        result = self.push(app)
        assert result.returncode == 0, result.stderr
        assert f"{app}-{commit[:12]} is live" in result.stderr
        return commit[:12]

    def get(self, path="/", app="app"):
        return self.box.get(path, headers={"Host": app})

    def live_run(self, app="app"):
        return os.readlink(self.box.app(app).live_socket)[:-len(".socket")]

    def vassals(self, app="app"):
        """The app's vassals the Emperor runs."""
        return [name for name in self.box.emperor_vassals() if name.startswith(app + "-")]

    def env_file(self, app="app"):
        return self.box.app(app).env_file

    def read_bytes(self, path):
        try:
            with open(path, "rb") as stream:
                return stream.read()
        except FileNotFoundError:
            return None


@pytest.fixture(scope="module")
def remote():
    box = Sandbox()
    account = create_deploy_account(box)
    try:
        world = Remote(box, account, start_sshd(box, account))
        world.bin_dir = install_toolkit(box, account)
        box.start_emperor(bin_dir=world.bin_dir, user=account.pw_name)
        for app in ("app", "other", "idle", "legacy"):   # deploy-init's defaults
            run_checked("runuser", "-u", account.pw_name, "--", os.path.join(world.bin_dir, "deploy-init"),
                        app, env=box.environ)
        box.start_nginx(["app", "other", "idle", "legacy"])
        yield world
    finally:
        box.stop()
        remove_account(account)


def assert_refused_by_git_shell(result):
    assert result.returncode == 128, result
    assert "fatal: unrecognized command" in result.stderr
    assert "uid=" not in result.stdout + result.stderr


# -- what the key may run --------------------------------------------------------
def test_interactive_login_lists_the_commands_one_line_each(remote):
    result = remote.ssh()          # no command, no terminal: git-shell runs `help`
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name, usage, what in COMMANDS:
        [line] = [line for line in lines if line.split()[:1] == [name]]
        assert usage in line and what in line
    listed = os.listdir(os.path.join(remote.box.home, "git-shell-commands"))
    assert sorted(listed) == sorted([name for name, _, _ in COMMANDS] + ["help"])


@pytest.mark.parametrize("command", ["sh -c id", "deploy-status; id", "id", "deploy-emperor",
                                     "deploy-init evil", "../bin/deploy-status", "bash"])
def test_anything_else_is_refused_as_git_shell_refuses_it(remote, command):
    assert_refused_by_git_shell(remote.ssh(command))


def test_arguments_never_reach_a_shell(remote):
    result = remote.ssh("deploy-status '$(id)' ; id")
    assert result.returncode == 2 and "uid=" not in result.stdout + result.stderr
    result = remote.ssh("deploy-status '$(id)'")
    assert result.returncode == 1
    # the argument arrives as typed: the tool names it in its one-line error
    assert result.stderr.startswith("deploy-status: ") and "'$(id)'" in result.stderr, result.stderr


# -- push, status, rollback, cleanup ----------------------------------------------
def test_push_then_status_as_json(remote):
    rev = remote.deploy("app", "status-v1")
    result = remote.ssh("deploy-status app --json")
    assert result.returncode == 0, result.stderr
    [app] = json.loads(result.stdout)["apps"]
    assert app["name"] == "app" and app["live"] == f"app-{rev}"
    assert (app["answers_ping"], app["ping_seen"]) == (True, "status 200")
    assert app["recent"][0]["version"] == f"app-{rev}"


def test_rollback_to_the_previous_version_even_after_a_config_change(remote):
    first = remote.deploy("app", "rollback-v1")
    second = remote.deploy("app", "rollback-v2")
    # a configuration change restarts v2; v1 stays the rollback target
    config = remote.ssh("deploy-config app set ROLLBACK_TEST", input="1\n")
    assert config.returncode == 0, config.stderr
    assert remote.live_run() == f"app-{second}.1"
    result = remote.ssh("deploy-version --previous app")
    assert result.returncode == 0, result.stderr
    assert f"app-{first} is live" in result.stderr
    assert remote.get().text == "rollback-v1"
    assert remote.get("/env").json()["ROLLBACK_TEST"] == "1"   # the app's variables still apply
    status = json.loads(remote.ssh("deploy-status app --json").stdout)["apps"][0]
    assert status["live"] == f"app-{first}"
    assert [v["marks"] for v in status["versions"] if v["name"] == f"app-{second}"] == [["previous"]]


def test_cleanup_keeps_live_and_previous_and_removes_the_rest_with_their_logs(remote):
    app = remote.box.app("app")
    while len(versions_on_disk(app)) < 4:
        remote.deploy("app", f"cleanup-v{len(versions_on_disk(app))}")
    live = app.live_version()
    status = json.loads(remote.ssh("deploy-status app --json").stdout)["apps"][0]
    [previous] = [v["name"] for v in status["versions"] if "previous" in v["marks"]]
    result = remote.ssh("deploy-cleanup 1")
    assert result.returncode == 0, result.stderr
    assert f"kept {live.name}: live" in result.stdout
    assert f"kept {previous}: previous (rollback target)" in result.stdout
    assert "removed app-" in result.stdout
    assert sorted(v.name for v in versions_on_disk(app)) == sorted([live.name, previous])
    left = [name for name in os.listdir(remote.box.settings.log_dir) if name.startswith("app-")]
    assert all(name.startswith((live.name, previous)) for name in left), left


# -- per-app configuration -----------------------------------------------------------
def test_config_set_from_stdin_restarts_with_zero_failed_requests(remote):
    # two workers, slow requests longer than the watch: every worker is busy at times
    rev = remote.deploy("app", "config-v1", extra={"setup": SETUP, "uwsgi.ini": BUSY_INI})
    box = remote.box
    with BusyLoad(box, ["config-v1"]) as load:
        wait_until(lambda: load.busy.all_slow_samples > 0, 60, "every worker busy with a slow request")
        result = remote.ssh("deploy-config app set SECRET_TOKEN", input=SECRET + "\n")
        load.settle()
    assert result.returncode == 0, result.stderr
    load.assert_nothing_lost()
    # the app sees the value, byte for byte (one trailing newline dropped)
    assert remote.get("/env").json()["SECRET_TOKEN"] == SECRET
    # the same version, restarted beside the old run, without setup
    assert remote.live_run() == f"app-{rev}.1"
    assert f"Restarting app-{rev} as app-{rev}.1" in result.stderr
    with open(os.path.join(box.home, f"app-{rev}", "setup-runs")) as runs:
        assert runs.read() == "ran\n"
    wait_until(lambda: remote.vassals() == [f"app-{rev}.1.ini"], 30, "the old run to stop")
    with open(box.settings.log_file) as log:
        last = log.read().splitlines()[-1]
    assert last.startswith(f"app-{rev} ") and " via=config " in last
    # names only, and the file is the account's alone
    names = remote.ssh("deploy-config app")
    assert names.returncode == 0 and "SECRET_TOKEN" in names.stdout.splitlines()
    info = os.stat(remote.env_file())
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == remote.account.pw_uid
    # the value is nowhere but in the file and the vassal ini
    assert "s3cr3t-Zq9" not in result.stdout + result.stderr + names.stdout + names.stderr
    for directory in (box.settings.log_dir, box.home):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if os.path.isfile(path) and path != remote.env_file():
                assert b"s3cr3t-Zq9" not in remote.read_bytes(path), path


def test_config_change_of_one_app_never_reaches_another(remote):
    remote.deploy("other", "other-v1")
    if remote.box.app("app").live_version() is None:
        remote.deploy("app", "isolation-v1")
    result = remote.ssh("deploy-config other set OTHER_ONLY", input="for other\n")
    assert result.returncode == 0, result.stderr
    assert remote.get("/env", app="other").json()["OTHER_ONLY"] == "for other"
    assert "OTHER_ONLY" not in remote.get("/env", app="app").json()
    app_names = remote.ssh("deploy-config app").stdout.split()
    other_env = remote.get("/env", app="other").json()
    assert not set(app_names) & set(other_env), app_names
    # unset restarts it without the variable; unsetting it again changes nothing
    result = remote.ssh("deploy-config other unset OTHER_ONLY")
    assert result.returncode == 0, result.stderr
    assert "OTHER_ONLY" not in remote.get("/env", app="other").json()
    live = remote.live_run("other")
    again = remote.ssh("deploy-config other unset OTHER_ONLY")
    assert again.returncode == 0 and "OTHER_ONLY is not set in " in again.stderr
    assert remote.live_run("other") == live


@pytest.mark.parametrize("command, value, message", [
    ("deploy-config nosuch set X", "SECRETISH\n", "deploy-config: no app 'nosuch'"),
    ("deploy-config nosuch", None, "deploy-config: no app 'nosuch'"),
    ("deploy-config app set MULTI", "SECRETISH\nsecond line\n",
     "deploy-config: MULTI: a newline cannot be passed through uwsgi.ini"),
    ("deploy-config app set TRAILING", "SECRETISH \n",
     "deploy-config: TRAILING: trailing whitespace would be stripped by uWSGI"),
    ("deploy-config app set EXPANDED", "SECRETISH${HOME}\n",
     "deploy-config: EXPANDED: the value would not read back unchanged"),
    ("deploy-config app set BAD-NAME", "SECRETISH\n", "deploy-config: invalid variable name 'BAD-NAME'"),
    ("deploy-config app set UWSGI_HTTP_SOCKET", "SECRETISH\n",
     "deploy-config: UWSGI_HTTP_SOCKET: names starting with UWSGI_ become uWSGI options"),
])
def test_config_refusals_change_nothing(remote, command, value, message):
    if remote.box.app("app").live_version() is None:
        remote.deploy("app", "refusal-v1")
    before, live = remote.read_bytes(remote.env_file()), remote.live_run()
    result = remote.ssh(command, input=value)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(message), result.stderr
    assert "SECRETISH" not in result.stderr
    assert remote.read_bytes(remote.env_file()) == before
    assert remote.live_run() == live
    assert remote.get("/").status_code == 200


def test_failed_restart_restores_the_file_and_keeps_the_live_version(remote):
    rev = remote.deploy("app", "crashable", extra={
        "app.py": CRASHABLE_APP.format(version="crashable", ping_status=200)})
    before, live = remote.read_bytes(remote.env_file()), remote.live_run()
    assert live == f"app-{rev}"
    result = remote.ssh("deploy-config app set CRASH_AT_IMPORT", input="yes\n")
    assert result.returncode == 1, result.stderr
    assert f"app-{rev}.1 not deployed; app-{rev} is still live" in result.stderr
    assert "restored: CRASH_AT_IMPORT is as it was before" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("deploy-config: ")
    assert remote.read_bytes(remote.env_file()) == before
    assert "CRASH_AT_IMPORT" not in remote.ssh("deploy-config app").stdout
    assert remote.live_run() == live
    assert remote.get().text == "crashable"
    wait_until(lambda: remote.vassals() == [live + ".ini"], 30, "the failed run to be removed")


# -- logs -----------------------------------------------------------------------------
def test_logs_tail(remote):
    if remote.box.app("app").live_version() is None:
        remote.deploy("app", "logs-v1")
    remote.get("/logged-request")
    result = remote.ssh("deploy-logs app -n 5")
    assert result.returncode == 0, result.stderr
    with open(remote.box.app("app").live_version().log, errors="replace") as log:
        assert result.stdout.splitlines() == log.read().splitlines()[-5:]
    assert len(result.stdout.splitlines()) == 5


def test_logs_follow_moves_to_the_new_version_after_a_deploy(remote):
    if remote.box.app("app").live_version() is None:
        remote.deploy("app", "follow-v1")
    argv = remote.ssh_command.split() + [f"{remote.user}@127.0.0.1", "deploy-logs app -f -n 1"]
    follower = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []

    def read():
        for line in iter(follower.stdout.readline, b""):
            lines.append(line)
    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: lines, 30, "the first log line")
        rev = remote.deploy("app", "follow-v2")
        marker = f"==> app-{rev} is live: following ".encode()
        wait_until(lambda: any(line.startswith(marker) for line in lines), 30, "the marker line")
        token = f"/followed-{time.monotonic_ns()}"
        assert remote.get(token).text == "follow-v2"
        wait_until(lambda: any(token.encode() in line for line in lines), 30, "the new version's log line")
        at = [i for i, line in enumerate(lines) if line.startswith(marker)][0]
        assert any(token.encode() in line for line in lines[at:])
    finally:
        follower.kill()
        follower.wait()
    # the follower on the server ends with its client
    wait_until(lambda: not remote_processes(remote, "deploy-logs"), 30, "deploy-logs to end on the server")


def remote_processes(remote, word):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != remote.account.pw_uid:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                if word.encode() in stream.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


# -- one-off commands ----------------------------------------------------------------------
PROGRAM = ("import os, sys; print(os.environ['RUN_VAR']); print(os.environ['FROM_REPO']); "
           "print(sys.prefix); print(os.getcwd()); print(sys.argv[1:]); sys.exit(7)")


def test_run_gets_the_apps_variables_and_python_environment_and_its_exit_status(remote):
    rev = remote.deploy("app", "run-v1", extra={"setup": SETUP, "environment.sh": "FROM_REPO=repo\n"})
    assert remote.ssh("deploy-config app set RUN_VAR", input="from config\n").returncode == 0
    workdir = os.path.join(remote.box.home, f"app-{rev}")
    result = remote.ssh(f"deploy-run app -- python3 -c \"{PROGRAM}\" '$(id); echo x' \"a b\"")
    assert result.returncode == 7, result.stderr
    assert result.stdout.splitlines() == [
        "from config", "repo", os.path.join(workdir, ".venv"), workdir, "['$(id); echo x', 'a b']"]
    # no terminal needed: stdin streams through
    echo = remote.ssh("deploy-run app -- cat", input="through stdin\n")
    assert (echo.returncode, echo.stdout) == (0, "through stdin\n")
    missing = remote.ssh("deploy-run app -- no-such-command")
    assert missing.returncode == 127 and "no-such-command: command not found" in missing.stderr


def test_run_is_refused_when_nothing_is_live(remote):
    result = remote.ssh("deploy-run idle -- true")
    assert result.returncode == 1
    assert result.stderr == "deploy-run: nothing of idle is live: deploy it first (git push)\n"


# -- the deploy branch -------------------------------------------------------------------
def test_another_branch_is_stored_deploys_nothing_and_says_so(remote):
    if remote.box.app("app").live_version() is None:
        remote.deploy("app", "branch-v1")
    live = remote.live_run()
    remote.box.commit_app("feature-work", repo=remote.repo("app"))
    result = remote.push("app", refspec="main:feature")
    assert result.returncode == 0, result.stderr
    warning = [line.rstrip() for line in result.stderr.splitlines() if "feature" in line and "remote:" in line]
    assert warning == ["remote:  !     branch feature was pushed but deploys nothing: only main or master "
                       "deploys; to deploy it: git push deploy HEAD:main"], result.stderr
    assert remote.live_run() == live and remote.get().text != "feature-work"


def test_master_deploys_to_a_repository_made_with_defaults(remote):
    source = os.path.join(remote.box.root, "src-master")
    subprocess.run(["git", "init", "-q", "-b", "master", source], check=True)
    commit = remote.box.commit_app("from-master", repo=source)
    result = remote.push("legacy", refspec="master", repo=source)
    assert result.returncode == 0, result.stderr
    assert f"legacy-{commit[:12]} is live" in result.stderr
    assert remote.get(app="legacy").text == "from-master"
    assert re.search(r"\* \[new branch\] +master -> master", result.stderr)
