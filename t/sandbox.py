"""The test server: lib's Sandbox (Emperor, nginx, deploy account home) plus a
developer's repository pushed with a real git client; and, for the tests over
ssh, a throw-away deploy account with git-shell and an sshd on a loopback port."""
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import requests

from conftest import ROOT, write
from uwsgi_deploy import sandbox as base
from uwsgi_deploy.emperor import read_stats
from uwsgi_deploy.layout import App

# The app the tests deploy: reports its version and environment, can be slow.
TEST_APP = '''import json, os, time

VERSION = "{version}"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/ping":
        status = os.environ.get("PING_STATUS", "{ping_status}")
        start_response(status + " X", [("Content-Type", "text/plain")])
        return [b"pong"]
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or 3))
    if path == "/env":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(dict(os.environ)).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''

TEST_INI = """[uwsgi]
master = true
processes = 4
wsgi-file = app.py
"""


class Sandbox(base.Sandbox):
    def __init__(self):
        super().__init__(tempfile.mkdtemp(prefix="ud-", dir="/tmp"))
        # a short post-switch watch keeps every test on that code path; the
        # watch tests set their own
        self.environ["DEPLOY_WATCH"] = "0.3"

    def get(self, path="/", **kwargs):
        return requests.get(self.url(path), timeout=kwargs.pop("timeout", 10), **kwargs)

    def deploy_init(self, app):
        result = self.tool("deploy-init", app)
        assert result.returncode == 0, result.stderr
        return result

    def app(self, name):
        return App(self.settings, name)

    # -- the developer's side ----------------------------------------------
    def source_repo(self, name="src"):
        path = os.path.join(self.root, name)
        if not os.path.isdir(path):
            subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)
        return path

    def commit(self, files, repo=None, message="change"):
        """Write files (name -> text, or None to delete) and commit; returns the commit."""
        repo = repo or self.source_repo()
        for name, text in files.items():
            path = os.path.join(repo, name)
            if text is None:
                os.unlink(path)
                continue
            write(path, text, 0o755 if name.endswith("setup") else None)
        self.git(repo, "add", "-A")
        self.git(repo, "-c", "user.name=t", "-c", "user.email=t@t",
                 "commit", "-q", "--allow-empty", "-m", message)
        return self.git(repo, "rev-parse", "HEAD").stdout.strip()

    def commit_app(self, version, ping_status=200, extra=None, repo=None):
        files = {"app.py": TEST_APP.format(version=version, ping_status=ping_status),
                 "uwsgi.ini": TEST_INI}
        files.update(extra or {})
        return self.commit(files, repo, message=f"version {version}")

    def git(self, repo, *args, env=None, check=True):
        result = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                                env=dict(self.environ, **(env or {})), timeout=300)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def push(self, app="app", refspec="main", repo=None, extra_env=None, force=True):
        """git push to ~/APP.git (local transport: git runs the hook as in production)."""
        args = ["push"] + (["--force"] if force else []) + [os.path.join(self.home, app + ".git"), refspec]
        return self.git(repo or self.source_repo(), *args, env=extra_env, check=False)

    def start_push(self, app="app", repo=None, env=None):
        """git push in the background; returns the Popen (output on stdout)."""
        return subprocess.Popen(["git", "-C", repo or self.source_repo(), "push", "--force",
                                 os.path.join(self.home, app + ".git"), "main"],
                                env=dict(self.environ, **(env or {})), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def paused_push(self, stage, **kwargs):
        """A push whose deploy stops on reaching stage (DEPLOY_TEST_PAUSE)."""
        return PausedPush(self, stage, **kwargs)

    # -- what is on the server ---------------------------------------------
    def vassal_inis(self):
        return sorted(n for n in os.listdir(self.settings.vassals_dir) if not n.startswith("."))

    def run_files(self, suffix):
        return sorted(n for n in os.listdir(self.settings.run_dir) if n.endswith(suffix))

    def emperor_vassals(self):
        return sorted(v["id"] for v in (read_stats(self.settings.emperor_stats) or {}).get("vassals", []))

    def wait_emperor_vassals(self, expected, timeout=15):
        base.wait_until(lambda: self.emperor_vassals() == sorted(expected), timeout,
                        f"Emperor vassals {expected} (have {self.emperor_vassals()})")


class PausedPush:
    def __init__(self, box, stage, app="app", repo=None, env=None):
        self.gate = os.path.join(box.root, f"gate-{stage}")
        self.process = box.start_push(app, repo, dict(env or {}, DEPLOY_TEST_PAUSE=f"{stage}:{self.gate}"))

    def reached(self):
        """Wait until the deploy pauses; returns the deploy's pid."""
        wait_file(self.gate)
        deadline = time.monotonic() + 5
        while not open(self.gate).read():
            assert time.monotonic() < deadline, "the paused deploy never wrote its pid"
            time.sleep(0.01)
        return int(open(self.gate).read())

    def release(self):
        os.unlink(self.gate)

    def finish(self, timeout=120):
        """(returncode, output) once the push has ended."""
        output = self.process.communicate(timeout=timeout)[0]
        return self.process.returncode, output


def wait_file(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# -- over ssh, as in production ------------------------------------------------
GIT_SHELL = shutil.which("git-shell") or "/usr/bin/git-shell"


def run_checked(*argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result


def create_deploy_account(box):
    """A throw-away account owning box.home, login shell git-shell; its pwd entry."""
    if os.geteuid() != 0:
        raise AssertionError("the ssh tests create an account and run sshd: run them as root (CI does)")
    name = "udt" + secrets.token_hex(3)
    os.chmod(box.root, 0o755)
    # password "*": no password login, but not "locked" (sshd refuses locked accounts)
    run_checked("useradd", "--no-create-home", "--home-dir", box.home, "--shell", GIT_SHELL,
                "--password", "*", name)
    shutil.chown(box.home, name, name)
    return pwd.getpwnam(name)


def remove_account(account):
    subprocess.run(["userdel", account.pw_name], capture_output=True)


def install_toolkit(box, account):
    """`make install` into the account's home, owned by it: the tools as they ship."""
    run_checked("make", "-s", "-C", ROOT, "install", f"PREFIX={box.home}")
    run_checked("chown", "-R", f"{account.pw_name}:{account.pw_name}", box.home)
    return os.path.join(box.home, "bin")


def start_sshd(box, account):
    """sshd on 127.0.0.1:PORT accepting a generated key for account; returns
    the ssh command line that uses that key (for GIT_SSH_COMMAND)."""
    keys = os.path.join(box.root, "keys")
    os.makedirs(keys)
    run_checked("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(keys, "host"))
    run_checked("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(keys, "client"))
    ssh_dir = os.path.join(box.home, ".ssh")
    os.makedirs(ssh_dir, mode=0o700)
    shutil.copy(os.path.join(keys, "client.pub"), os.path.join(ssh_dir, "authorized_keys"))
    for path in (ssh_dir, os.path.join(ssh_dir, "authorized_keys")):
        shutil.chown(path, account.pw_uid, account.pw_gid)
    port = base.free_port()
    config = write(os.path.join(keys, "sshd_config"), f"""
ListenAddress 127.0.0.1
Port {port}
HostKey {keys}/host
PidFile {keys}/sshd.pid
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers {account.pw_name}
""")
    os.makedirs("/run/sshd", exist_ok=True)   # privilege separation directory
    with open(os.path.join(keys, "sshd.log"), "w") as log:
        process = box._start("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", config], stderr=log)

    def listening():
        assert process.poll() is None, open(os.path.join(keys, "sshd.log")).read()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    base.wait_until(listening, 10, "sshd")
    return (f"ssh -p {port} -i {keys}/client -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
