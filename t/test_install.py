"""make install / uninstall: installed tools run on their own; uninstall
removes exactly what install wrote. install.sh, run twice for an account;
the Emperor's systemd unit, and the SIGTERM it stops the Emperor with."""
import os
import pwd
import secrets
import signal
import stat
import subprocess
import threading

import pytest

from conftest import ROOT, wait_until
from uwsgi_deploy.stats import read_stats, vassal_state


def tree(path):
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, dirs, files in os.walk(path) for f in files + dirs)


@pytest.mark.network
def test_installed_tools_run_without_the_checkout_and_uninstall_is_exact(world):
    prefix = os.path.join(world, "home")
    os.makedirs(os.path.join(prefix, "bin"))
    mine = os.path.join(prefix, "bin", "my-own-tool")
    open(mine, "w").close()
    before = tree(prefix)
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"PREFIX={prefix}"], check=True,
                   capture_output=True)
    # the product only: no test harness, demo or benchmark
    assert [path for path in tree(prefix) if "sandbox" in path or "demo" in path or "bench" in path] == []
    assert sorted(os.listdir(os.path.join(prefix, "share", "uwsgi-deploy"))) == sorted(os.listdir(
        os.path.join(ROOT, "share")))
    bare = {"PATH": "/usr/bin:/bin", "HOME": prefix}   # no venv, no PYTHONPATH
    for tool in sorted(os.listdir(os.path.join(ROOT, "bin"))):
        installed = os.path.join(prefix, "bin", tool)
        with open(installed) as stream:
            head = stream.read(200)
        assert head.startswith("#!/usr/bin/python3\n"), head
        assert "/lib/uwsgi-deploy" in open(installed).read()
        result = subprocess.run([installed, "--help"], capture_output=True, text=True, env=bare)
        assert result.returncode == 0 and "usage:" in result.stdout, (tool, result.stderr)
    # the vendored requirements' bin/ holds uv (deploy-venv runs it), and no
    # script naming an interpreter the install does not have
    site_bin = os.path.join(prefix, "lib", "uwsgi-deploy", "site", "bin")
    assert "uv" in os.listdir(site_bin)
    for name in os.listdir(site_bin):
        with open(os.path.join(site_bin, name), "rb") as stream:
            assert not stream.read(2) == b"#!", name
    result = subprocess.run([os.path.join(prefix, "bin", "probe-ping"), "--timeout", "0.2",
                             "http://127.0.0.1:9"], capture_output=True, text=True, env=bare)
    assert result.returncode == 1 and "refused" in result.stderr   # requests, vendored, works
    subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"PREFIX={prefix}"], check=True,
                   capture_output=True)
    assert tree(prefix) == before


@pytest.mark.network
def test_destdir_stages_under_destdir_only(world):
    stage = os.path.join(world, "stage")
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={stage}", "PREFIX=/srv/deploy"],
                   check=True, capture_output=True)
    assert os.path.exists(os.path.join(stage, "srv/deploy/bin/pre-receive"))
    with open(os.path.join(stage, "srv/deploy/bin/pre-receive")) as stream:
        assert '"/srv/deploy/lib/uwsgi-deploy"' in stream.read()   # paths of the final place


@pytest.mark.ssh
@pytest.mark.network
def test_install_sh_makes_the_deploy_home_private_and_never_loosens_it(world):
    """./install.sh --user on a throw-away account: a 0755 home is tightened
    to 0750, a layout directory already 0700 stays 0700, and a second run
    changes nothing."""
    name = "udi" + secrets.token_hex(3)
    os.chmod(world, 0o755)   # the account reaches its home (install.sh runs deploy-commands as it)
    home = os.path.join(world, "home")
    os.makedirs(os.path.join(home, "run"))
    os.chmod(home, 0o755)
    os.chmod(os.path.join(home, "run"), 0o700)
    subprocess.run(["useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/false", name],
                   check=True, capture_output=True)
    try:
        def install():
            result = subprocess.run([os.path.join(ROOT, "install.sh"), "--user", name], capture_output=True,
                                    text=True, timeout=600)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        def modes():
            return {entry: (stat.S_IMODE(os.stat(os.path.join(home, entry)).st_mode),
                            pwd.getpwuid(os.stat(os.path.join(home, entry)).st_uid).pw_name)
                    for entry in (".", "vassals", "run", "log")}

        output = install()
        assert f"tightened {home} from mode 755 to 750" in output
        expected = {".": (0o750, name), "vassals": (0o750, name), "run": (0o700, name), "log": (0o750, name)}
        assert modes() == expected
        account = pwd.getpwnam(name)
        assert account.pw_shell.endswith("/git-shell") and f"setting {name}'s login shell" in output
        commands = os.path.join(home, "git-shell-commands")
        assert os.readlink(os.path.join(commands, "deploy-status")) == os.path.join(home, "bin", "deploy-status")
        links = {entry: os.readlink(os.path.join(commands, entry)) for entry in os.listdir(commands)}
        again = install()
        assert "tightened" not in again and f"{commands} is up to date" in again
        assert f"setting {name}'s login shell" not in again
        assert modes() == expected
        assert {entry: os.readlink(os.path.join(commands, entry)) for entry in os.listdir(commands)} == links
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def test_emperor_unit_is_valid_and_runs_with_a_private_umask(world):
    unit = os.path.join(world, "uwsgi-deploy-emperor@www-data.service")
    with open(os.path.join(ROOT, "share", "uwsgi-deploy-emperor.service")) as stream:
        text = stream.read()
    with open(unit, "w") as stream:
        stream.write(text)
    result = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert "\nUMask=0027\n" in text


@pytest.mark.emperor
def test_deploy_emperor_stops_its_vassals_gracefully_on_sigterm(server):
    """The unit's KillSignal=SIGTERM: deploy-emperor (exec'd into uWSGI's
    Emperor) stops every vassal gracefully, a request in flight finishing,
    and exits."""
    server.commit_app("v1")
    assert server.push().returncode == 0
    live = server.app("app").live_version()
    master = vassal_state(read_stats(server.settings.emperor_stats), os.path.basename(live.vassal_ini))["pid"]
    workers = [w["pid"] for w in read_stats(live.stats_socket)["workers"]]
    answer = {}
    slow = threading.Thread(target=lambda: answer.update(response=server.get("/slow", params="2", timeout=30)))
    slow.start()
    wait_until(lambda: any(w["status"] == "busy" for w in (read_stats(live.stats_socket) or {}).get("workers", [])),
               10, "the slow request to reach a worker")
    [emperor] = [process for kind, process in server.processes if kind == "emperor"]
    emperor.send_signal(signal.SIGTERM)
    assert emperor.wait(30) == 0
    slow.join(30)
    assert (answer["response"].status_code, answer["response"].text) == (200, "v1")
    assert [pid for pid in [master, *workers] if os.path.exists(f"/proc/{pid}")] == []
    with open(os.path.join(server.settings.log_dir, "emperor.log"), errors="replace") as log:
        assert "The Emperor is buried." in log.read()


def test_site_from_wheels_asks_no_index(tmp_path):
    """make site WHEELS=DIR (install.sh --wheels, install.yml's wheels)
    installs from DIR alone: from an empty one it fails, naming what it
    lacks, where pip with an index would have fetched it, and leaves no
    site. (A site from what `make wheels` fetched is what every host of
    t/test_fleet.py's world installs.)"""
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = subprocess.run(["make", "-s", "-C", ROOT, "site", f"BUILD={tmp_path / 'build'}", f"WHEELS={empty}"],
                            capture_output=True, text=True)
    assert failed.returncode != 0
    assert "No matching distribution found for sh==" in failed.stderr, failed.stderr
    assert not (tmp_path / "build" / "site").exists()
