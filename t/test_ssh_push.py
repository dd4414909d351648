"""git push over ssh, as in production: a deploy account whose login shell is
git-shell, the toolkit installed into its home by `make install`, an Emperor
running as that account, and a real sshd on a test-only loopback port."""
import os
import subprocess

import pytest

from accounts import create_deploy_account, install_toolkit, remove_account, run_checked as run, start_sshd


@pytest.fixture
def deploy_account(sandbox):
    """A throw-away account owning the sandbox home, login shell git-shell."""
    account = create_deploy_account(sandbox)
    yield account
    sandbox.stop()    # the account's processes end before the account goes
    remove_account(account)


@pytest.fixture
def sshd(sandbox, deploy_account):
    """sshd on 127.0.0.1:PORT accepting a generated key for the deploy account."""
    return start_sshd(sandbox, deploy_account)


def test_push_over_ssh_deploys_through_git_shell(sandbox, deploy_account, sshd):
    user = deploy_account.pw_name
    # the toolkit as installed for the account: absolute shebang, vendored library
    installed = install_toolkit(sandbox, deploy_account)
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
