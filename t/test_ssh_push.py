"""git push over ssh, as in production: a deploy account whose login shell is
git-shell, the toolkit installed into its home by `make install`, an Emperor
running as that account, and a real sshd on a test-only loopback port."""
import os
import pwd
import secrets
import shutil
import socket
import subprocess

import pytest

from conftest import ROOT, write
from uwsgi_deploy.sandbox import free_port, wait_until

GIT_SHELL = shutil.which("git-shell") or "/usr/bin/git-shell"


def run(*argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result


@pytest.fixture
def deploy_account(sandbox):
    """A throw-away account owning the sandbox home, login shell git-shell."""
    if os.geteuid() != 0:
        pytest.fail("the ssh test creates an account and runs sshd: run it as root (CI does)")
    name = "udt" + secrets.token_hex(3)
    os.chmod(sandbox.root, 0o755)
    # password "*": no password login, but not "locked" (sshd refuses locked accounts)
    run("useradd", "--no-create-home", "--home-dir", sandbox.home, "--shell", GIT_SHELL,
        "--password", "*", name)
    shutil.chown(sandbox.home, name, name)
    yield pwd.getpwnam(name)
    subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def sshd(sandbox, deploy_account):
    """sshd on 127.0.0.1:PORT accepting a generated key for the deploy account."""
    keys = os.path.join(sandbox.root, "keys")
    os.makedirs(keys)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(keys, "host"))
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(keys, "client"))
    ssh_dir = os.path.join(sandbox.home, ".ssh")
    os.makedirs(ssh_dir, mode=0o700)
    shutil.copy(os.path.join(keys, "client.pub"), os.path.join(ssh_dir, "authorized_keys"))
    for path in (ssh_dir, os.path.join(ssh_dir, "authorized_keys")):
        shutil.chown(path, deploy_account.pw_uid, deploy_account.pw_gid)
    port = free_port()
    config = write(os.path.join(keys, "sshd_config"), f"""
ListenAddress 127.0.0.1
Port {port}
HostKey {keys}/host
PidFile {keys}/sshd.pid
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers {deploy_account.pw_name}
""")
    os.makedirs("/run/sshd", exist_ok=True)   # privilege separation directory
    with open(os.path.join(keys, "sshd.log"), "w") as log:
        process = sandbox._start("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", config], stderr=log)

    def listening():
        assert process.poll() is None, open(os.path.join(keys, "sshd.log")).read()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    wait_until(listening, 10, "sshd")
    ssh = (f"ssh -p {port} -i {keys}/client -o IdentitiesOnly=yes -o BatchMode=yes "
           f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
    return ssh


def test_push_over_ssh_deploys_through_git_shell(sandbox, deploy_account, sshd):
    user = deploy_account.pw_name
    # the toolkit as installed for the account: absolute shebang, vendored library
    run("make", "-s", "-C", ROOT, "install", f"PREFIX={sandbox.home}")
    run("chown", "-R", f"{user}:{user}", sandbox.home)
    installed = os.path.join(sandbox.home, "bin")
    sandbox.start_emperor(bin_dir=installed, user=user)
    run("runuser", "-u", user, "--", os.path.join(installed, "deploy-init", ), "app",
        env=sandbox.environ)
    sandbox.start_nginx(["app"])

    rev = sandbox.commit_app("v1", extra={"environment.sh": "WHO=ssh\n"})[:12]
    result = sandbox.git(sandbox.source_repo(), "push", f"{user}@127.0.0.1:app.git", "main",
                         env={"GIT_SSH_COMMAND": sshd}, check=False)
    assert result.returncode == 0, result.stderr + open(os.path.join(sandbox.root, "keys", "sshd.log")).read()
    assert f"app-{rev} is live" in result.stderr
    assert sandbox.get("/").text == "v1"
    assert sandbox.get("/env").json()["WHO"] == "ssh"
    live = os.path.join(sandbox.home, f"app-{rev}")
    assert os.stat(live).st_uid == deploy_account.pw_uid      # deployed by the account
    assert os.readlink(os.path.join(sandbox.home, "app")) == f"app-{rev}"
    # the account gets no shell: git-shell refuses anything but git
    shell = subprocess.run(sshd.split() + [f"{user}@127.0.0.1", "id"], capture_output=True, text=True)
    assert shell.returncode != 0
