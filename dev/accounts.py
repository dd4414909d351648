"""Throw-away deploy accounts reached over ssh, as in production: an account
with git-shell as its login shell, the toolkit installed into its home, and
an sshd on a loopback port. For the ssh and fleet tests, dev/fleet_world.py
and bench/fleet. Needs root."""
import os
import pwd
import secrets
import shutil
import socket
import subprocess

import sandbox_server as base
from sandbox_server import CHECKOUT as ROOT, write

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
    """userdel: refused while a process of the account still runs."""
    run_checked("userdel", account.pw_name)


def install_toolkit(box, account):
    """`make install` into the account's home, owned by it: the tools as they ship."""
    run_checked("make", "-s", "-C", ROOT, "install", f"PREFIX={box.home}")
    run_checked("chown", "-R", f"{account.pw_name}:{account.pw_name}", box.home)
    return os.path.join(box.home, "bin")


def start_sshd(box, account, admin_key=None, also_allow=()):
    """sshd on 127.0.0.1:PORT accepting a generated key for account; returns
    the ssh command line that uses that key (for GIT_SSH_COMMAND). With
    admin_key (a public key line), root may log in with it too, as an
    administrator reaches a host: the key is in this sshd's own file, never
    in /root/.ssh (StrictModes is off: that file lives under /tmp).
    also_allow: more account names that may log in (a fleet controller's)."""
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
    admin = ""
    if admin_key:
        write(os.path.join(keys, "authorized_keys.root"), admin_key.strip() + "\n", 0o600)
        # SHLVL=1: root's bash, which sshd runs each Ansible task with, then
        # does not source this machine's ~root/.bashrc (here it runs `pyenv
        # init`: 0.13 CPU-s a task, 60 forks), as a host's root would not
        admin = (f"PermitRootLogin prohibit-password\nStrictModes no\n"
                 f"AuthorizedKeysFile .ssh/authorized_keys {keys}/authorized_keys.%u\n"
                 f"Match User root\n  SetEnv SHLVL=1\n")
    config = write(os.path.join(keys, "sshd_config"), f"""
ListenAddress 127.0.0.1
Port {port}
HostKey {keys}/host
PidFile {keys}/sshd.pid
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp /usr/lib/openssh/sftp-server
AllowUsers {" ".join([account.pw_name, *also_allow])}{" root" if admin_key else ""}
{admin}""")
    os.makedirs("/run/sshd", exist_ok=True)   # privilege separation directory
    with open(os.path.join(keys, "sshd.log"), "w") as log:
        process = box._start("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", config], stderr=log)

    def listening():
        assert process.poll() is None, open(os.path.join(keys, "sshd.log")).read()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    base.wait_until(listening, 10, "sshd")
    box.ssh_port = port
    return (f"ssh -p {port} -i {keys}/client -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")


def serve_over_ssh(box, account, apps, emperor=True):
    """box as a deploy server reached over ssh: sshd for account, the toolkit
    installed, its Emperor (as account) and deploy-init for each app, then
    nginx for them. Returns (the ssh command with the account's first key,
    the installed bin directory)."""
    ssh = start_sshd(box, account)
    bin_dir = install_toolkit(box, account)
    if emperor:
        box.start_emperor(bin_dir=bin_dir, user=account.pw_name)
    for app in apps:
        run_checked("runuser", "-u", account.pw_name, "--", os.path.join(bin_dir, "deploy-init"), app,
                    env=box.environ)
    if emperor:
        box.start_nginx(list(apps))
    return ssh, bin_dir
