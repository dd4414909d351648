"""Shared, immutable dependency environments (~/venvs/<key>), deployed by real
pushes into a real Emperor behind nginx. The installer is real too (uv by
default, pip where asked); it installs tiny wheels this module builds into a
local directory, so no test depends on the network."""
import json
import marshal
import os
import shutil
import signal
import subprocess
import tempfile

import pytest
import requests

from conftest import ROOT, must_fail, write
from sandbox import Sandbox
from uwsgi_deploy.probe import free_loopback_port
from wheels import build_wheel, local_index_environ

# one module-scoped world: under xdist its tests run on one worker
pytestmark = [pytest.mark.emperor, pytest.mark.xdist_group("venvs")]

APPS = ["reuse", "chg", "back", "s1", "s2", "kill", "fail", "pipa", "zero"]

VENV_APP = '''import importlib, json, sys

PACKAGES = ("pkg_a", "pkg_b", "pkg_c", "pkg_d", "pkg_e", "pkg_f")


def application(environ, start_response):
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.import_module(name).VERSION
        except ImportError:
            found[name] = None
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"packages": found, "prefix": sys.prefix, "tag": "%s"}).encode()]
'''
VENV_INI = """[uwsgi]
master = true
processes = 2
wsgi-file = app.py
virtualenv = %(chdir)/.venv
"""
SITE_PACKAGES = os.path.join("lib", "python3.11", "site-packages")


@pytest.fixture(scope="module")
def wheels():
    directory = tempfile.mkdtemp(prefix="udw-", dir="/tmp")
    os.chmod(directory, 0o755)    # an unprivileged account installs from it too
    for name, version in (("pkg_a", "1.0"), ("pkg_a", "2.0"), ("pkg_b", "1.0"), ("pkg_c", "1.0"),
                          ("pkg_d", "1.0"), ("pkg_e", "1.0"), ("pkg_f", "1.0")):
        build_wheel(directory, name, version)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def box(wheels, stop_later):
    """One Emperor and nginx for the module; each test deploys its own apps."""
    box = Sandbox()
    box.environ.update(local_index_environ(wheels))
    try:
        box.start_emperor()
        for app in APPS:
            box.deploy_init(app)
        box.start_nginx(APPS)
        yield box
    finally:
        stop_later(box)


def app_files(requirements, tag="v1", extra=None):
    files = {"app.py": VENV_APP % tag, "uwsgi.ini": VENV_INI, "requirements.txt": requirements}
    files.update(extra or {})
    return files


def push(box, app, files, env=None):
    """Commit files to app's source repository and push; returns (rev, result)."""
    repo = box.source_repo("src-" + app)
    rev = box.commit(files, repo)[:12]
    return rev, box.push(app=app, repo=repo, extra_env=env)


def deployed(box, app, files, env=None):
    rev, result = push(box, app, files, env)
    assert result.returncode == 0, result.stderr
    return rev, result.stderr


def page(box, app):
    response = box.get("/", headers={"Host": app})
    assert response.status_code == 200, response.text
    return response.json()


def environment_of(box, app, rev):
    """The environment directory app-rev's .venv link names (resolved)."""
    link = os.path.join(box.home, f"{app}-{rev}", ".venv")
    assert os.path.islink(link), f"{link} is not a link"
    target = os.readlink(link)
    assert os.path.dirname(target) == box.settings.venvs_dir
    return target


def environments(box):
    """Environment keys in ~/venvs (not hidden: what versions could use)."""
    root = box.settings.venvs_dir
    return sorted(n for n in os.listdir(root) if not n.startswith(".")) if os.path.isdir(root) else []


def hidden_builds(box):
    return sorted(n for n in os.listdir(box.settings.venvs_dir) if n.startswith(".tmp-"))


def tool(box, *args, env=None):
    result = box.tool(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def compiled_for(env_path, module):
    """co_filename of module's compiled bytecode in the environment."""
    cache = os.path.join(env_path, SITE_PACKAGES, module, "__pycache__", "__init__.cpython-311.pyc")
    with open(cache, "rb") as stream:
        return marshal.loads(stream.read()[16:]).co_filename


def assert_under_setup_stage(output):
    """Every line from setup's title to `setup done` is indented under the
    stage, the installer's own lines included (report.Indented)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("remote: -----> ") and
                 ("Running setup" in line or "Preparing the environment" in line))
    end = next(i for i, line in enumerate(lines) if "setup done (" in line)
    under = [line for line in lines[start + 1:end + 1] if line.strip() != "remote:"]
    assert len(under) > 2 and all(line.startswith(("remote:        ", "remote:  !     ")) for line in under), \
        "\n".join(lines[start:end + 1])


def test_first_push_builds_and_an_unchanged_one_reuses_it(box):
    rev1, output = deployed(box, "reuse", app_files("pkg_a==1.0\n"))
    assert "environment " in output and ": building with uv " in output
    assert "Installed 1 package" in output            # the installer's own output, streamed
    assert_under_setup_stage(output)
    env = environment_of(box, "reuse", rev1)
    key = os.path.basename(env)
    facts = page(box, "reuse")
    assert facts["packages"]["pkg_a"] == "1.0"
    assert facts["prefix"] == os.path.join(box.home, f"reuse-{rev1}", ".venv")   # uWSGI followed the link
    # a console script works from behind the link, after the rename
    script = subprocess.run([os.path.join(box.home, "reuse", ".venv", "bin", "pkg_a-tool")],
                            capture_output=True, text=True, timeout=30)
    assert script.returncode == 0 and script.stdout.startswith("pkg_a 1.0 from "), script.stderr
    # compiled at build time, for the environment's final path
    assert compiled_for(env, "pkg_a") == os.path.join(env, SITE_PACKAGES, "pkg_a", "__init__.py")
    module = os.path.join(env, SITE_PACKAGES, "pkg_a", "__init__.py")
    before = (os.stat(env).st_ino, os.stat(module).st_ino, os.stat(module).st_mtime_ns)

    rev2, output = deployed(box, "reuse", app_files("pkg_a==1.0\n", tag="v2"))
    assert f"environment {key}: reused, no installer run" in output
    assert "building with" not in output and "Installed" not in output and "Resolved" not in output
    assert environment_of(box, "reuse", rev2) == env
    assert (os.stat(env).st_ino, os.stat(module).st_ino, os.stat(module).st_mtime_ns) == before
    assert page(box, "reuse")["tag"] == "v2"

    status = tool(box, "deploy-status", "--json", "reuse")
    rows = json.loads(status)["apps"][0]["versions"]
    assert [(row["name"], row["venv"]) for row in rows] == [(f"reuse-{rev2}", key), (f"reuse-{rev1}", key)]
    text = tool(box, "deploy-status", "reuse")
    assert f"reuse-{rev2}" in text and f"venv {key}  live" in text


def test_changed_requirements_get_a_new_environment_and_cleanup_keeps_those_in_use(box):
    rev1, _ = deployed(box, "chg", app_files("pkg_a==1.0\npkg_c==1.0\n"))
    first = environment_of(box, "chg", rev1)
    rev2, output = deployed(box, "chg", app_files("pkg_a==2.0\npkg_c==1.0\n"))
    assert "building with uv" in output
    second = environment_of(box, "chg", rev2)
    assert second != first
    assert page(box, "chg")["packages"]["pkg_a"] == "2.0"
    assert environment_of(box, "chg", rev1) == first and os.path.isdir(first)   # the previous version's

    lines = tool(box, "deploy-cleanup", "0", "--app", "chg").splitlines()
    assert f"kept venv {os.path.basename(first)}: used by chg-{rev1}" in lines     # previous version
    assert f"kept venv {os.path.basename(second)}: used by chg-{rev2}" in lines    # live version
    assert os.path.isdir(first)

    rev3, output = deployed(box, "chg", app_files("pkg_a==2.0\npkg_c==1.0\n", tag="v3"))
    assert "reused, no installer run" in output
    lines = tool(box, "deploy-cleanup", "--dry-run", "0", "--app", "chg").splitlines()
    gone = [line for line in lines if line.startswith(f"would remove venv {os.path.basename(first)}: "
                                                      "no version on disk uses it (")]
    assert gone and os.path.isdir(first)
    lines = tool(box, "deploy-cleanup", "0", "--app", "chg").splitlines()
    assert f"removed chg-{rev1}: old, and N is 0" in lines
    freed = [line for line in lines if line.startswith(f"removed venv {os.path.basename(first)}: "
                                                       "no version on disk uses it (")]
    assert freed and " MB freed" in freed[0], lines
    assert any(line.startswith("venvs: freed ") for line in lines)
    lock = os.path.join(box.settings.venvs_dir, f".{os.path.basename(first)}.lock")
    assert not os.path.exists(first) and not os.path.exists(lock)
    users = ", ".join(sorted([f"chg-{rev2}", f"chg-{rev3}"]))
    assert f"kept venv {os.path.basename(second)}: used by {users}" in lines
    assert page(box, "chg")["tag"] == "v3"

    # a version being deployed keeps the environment it has just linked
    repo = box.source_repo("src-chg")
    rev4 = box.commit(app_files("pkg_a==1.0\npkg_b==1.0\npkg_c==1.0\n", tag="v4"), repo)[:12]
    paused = box.paused_push("switch", app="chg", repo=repo)
    try:
        paused.reached()
        third = environment_of(box, "chg", rev4)
        lines = tool(box, "deploy-cleanup", "0", "--app", "chg").splitlines()
        assert f"kept venv {os.path.basename(third)}: used by chg-{rev4}" in lines
        assert os.path.isdir(third) and os.path.isdir(second)
    finally:
        paused.release()
    status, output = paused.finish()
    assert status == 0, output
    assert page(box, "chg")["packages"]["pkg_b"] == "1.0"


def test_a_rollback_runs_with_the_old_versions_packages(box):
    rev1, _ = deployed(box, "back", app_files("pkg_d==1.0\n"))
    rev2, _ = deployed(box, "back", app_files("pkg_d==1.0\npkg_b==1.0\n", tag="v2"))
    facts = page(box, "back")
    assert (facts["packages"]["pkg_d"], facts["packages"]["pkg_b"], facts["tag"]) == ("1.0", "1.0", "v2")

    result = box.tool("deploy-version", "--previous", "back")
    assert result.returncode == 0, result.stderr
    assert "reused, no installer run" in result.stderr
    facts = page(box, "back")
    assert (facts["packages"]["pkg_d"], facts["packages"]["pkg_b"], facts["tag"]) == ("1.0", None, "v1")
    assert facts["prefix"] == os.path.join(box.home, f"back-{rev1}", ".venv")
    assert environment_of(box, "back", rev1) != environment_of(box, "back", rev2)


def test_two_apps_with_the_same_requirements_build_one_environment_once(box):
    files = app_files("pkg_e==1.0\npkg_a==1.0\n")
    repos = {app: box.source_repo("src-" + app) for app in ("s1", "s2")}
    revs = {app: box.commit(files, repos[app])[:12] for app in repos}
    first = box.paused_push("venv-rename", app="s1", repo=repos["s1"])   # built, not yet in place
    first.reached()
    second = box.start_push(app="s2", repo=repos["s2"])
    try:
        second.wait_for_output("waiting for another deploy building environment")
        [building] = hidden_builds(box)
        assert building.split("-")[1] not in environments(box)       # not in view until renamed
        lines = tool(box, "deploy-cleanup", "--app", "s1").splitlines()
        assert f"kept venvs/{building}: a deploy is building it right now" in lines
    finally:
        first.release()
    status, first_output = first.finish()
    assert status == 0, first_output
    status, second_output = second.finish()
    assert status == 0, second_output
    assert "building with uv" in first_output and "Installed 2 packages" in first_output
    assert "building with" not in second_output and "Installed" not in second_output
    assert "no installer run" in second_output
    env = environment_of(box, "s1", revs["s1"])
    assert environment_of(box, "s2", revs["s2"]) == env
    assert os.path.basename(env) in environments(box)
    assert hidden_builds(box) == []
    for app in ("s1", "s2"):
        assert page(box, app)["packages"]["pkg_e"] == "1.0"


def test_a_build_killed_halfway_leaves_nothing_in_use_and_the_next_push_builds(box):
    rev1, _ = deployed(box, "kill", app_files("pkg_a==1.0\npkg_f==1.0\n"))
    repo = box.source_repo("src-kill")
    rev2 = box.commit(app_files("pkg_a==2.0\npkg_f==1.0\n", tag="v2"), repo)[:12]
    keys = environments(box)
    for point in ("venv-install", "venv-rename"):   # venv created; then everything but the rename
        paused = box.paused_push(point, app="kill", repo=repo)
        pid = paused.reached()
        assert len(hidden_builds(box)) == 1
        os.kill(pid, signal.SIGKILL)
        paused.release()                                 # the gate the dead deploy left
        must_fail(paused.result(), 1, "pre-receive hook declined")
        assert environments(box) == keys                 # no new environment came into view
        assert not os.path.lexists(os.path.join(box.home, f"kill-{rev2}", ".venv"))
        facts = page(box, "kill")
        assert (facts["tag"], facts["packages"]["pkg_a"]) == ("v1", "1.0")
        if point == "venv-install":     # deploy-cleanup removes what the dead build left
            [left] = hidden_builds(box)
            lines = tool(box, "deploy-cleanup", "10", "--app", "kill").splitlines()
            assert any(line.startswith(f"removed venvs/{left}: half-built by an interrupted deploy (")
                       for line in lines), lines
            assert hidden_builds(box) == []
    result = box.push(app="kill", repo=repo)
    assert result.returncode == 0, result.stderr
    assert "left by an interrupted build" in result.stderr and "building with uv" in result.stderr
    assert hidden_builds(box) == []
    facts = page(box, "kill")
    assert (facts["tag"], facts["packages"]["pkg_a"]) == ("v2", "2.0")
    assert os.path.basename(environment_of(box, "kill", rev2)) not in keys


def test_an_installer_failure_refuses_the_push_with_its_last_lines(box):
    deployed(box, "fail", app_files("pkg_a==1.0\n"))
    keys = environments(box)
    rev, result = push(box, "fail", app_files("pkg_a==1.0\nno-such-package==9.9\n", tag="v2"))
    must_fail(result, 1, "remote: pre-receive: setup: uv pip install exited with status 1")
    refused = [line for line in result.stderr.splitlines() if " !     " in line]
    assert any("setup: uv pip install exited with status 1" in line for line in refused), result.stderr
    assert any("no-such-package" in line for line in refused), result.stderr     # the installer's tail
    assert any(f"fail-{rev} not deployed" in line for line in refused)
    assert page(box, "fail")["tag"] == "v1"
    assert environments(box) == keys and hidden_builds(box) == []
    # a requirements.txt that leads out of the checkout is refused before any installer runs
    repo = box.source_repo("src-fail")
    os.unlink(os.path.join(repo, "requirements.txt"))
    os.symlink("/etc/hostname", os.path.join(repo, "requirements.txt"))
    box.git(repo, "add", "-A")
    box.git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "link out")
    result = box.push(app="fail", repo=repo)
    must_fail(result, 1, "remote: pre-receive: setup: requirements.txt leads outside the checkout")
    assert " !     setup: requirements.txt leads outside the checkout" in result.stderr, result.stderr
    assert "building with" not in result.stderr


def test_pip_builds_a_working_environment_from_a_setup_calling_deploy_venv(box):
    setup = "#!/bin/sh\nset -e\necho my setup runs\ndeploy-venv\n"
    files = app_files("pkg_a==1.0\n", extra={"setup": setup})
    rev, output = deployed(box, "pipa", files, env={"DEPLOY_VENV_INSTALLER": "pip"})
    assert "my setup runs" in output and "building with pip " in output
    env = environment_of(box, "pipa", rev)
    assert page(box, "pipa")["packages"]["pkg_a"] == "1.0"
    # pip's scripts had the build directory baked in: rewritten for the final path
    for name in os.listdir(os.path.join(env, "bin")):
        path = os.path.join(env, "bin", name)
        if os.path.isfile(path) and not os.path.islink(path):
            assert b".tmp-" not in open(path, "rb").read(), name
    script = subprocess.run([os.path.join(box.home, f"pipa-{rev}", ".venv", "bin", "pkg_a-tool")],
                            capture_output=True, text=True, timeout=30)
    assert script.returncode == 0 and script.stdout.startswith("pkg_a 1.0 from "), script.stderr
    assert compiled_for(env, "pkg_a") == os.path.join(env, SITE_PACKAGES, "pkg_a", "__init__.py")
    # the installer is part of the key: uv would build another environment
    checkout = os.path.join(box.home, f"pipa-{rev}")
    keys = {installer: tool(box, "deploy-venv", "--print-key", "--dir", checkout,
                            env={"DEPLOY_VENV_INSTALLER": installer}).strip()
            for installer in ("pip", "uv")}
    assert keys["pip"] == os.path.basename(env) and keys["uv"] != keys["pip"]


def test_requirements_without_a_setup_get_an_environment_with_no_configuration(box):
    files = app_files("pkg_b==1.0\n")
    files["app.py"] = "import pkg_b\n" + files["app.py"]    # fails to import without its environment
    files["uwsgi.ini"] = VENV_INI.replace("virtualenv = %(chdir)/.venv\n", "")
    rev, result = push(box, "zero", files)
    # the environment is built; an ini that does not use it fails the probe,
    # and the push says which line it needs
    must_fail(result, 1, "remote: pre-receive: probe: ")
    assert "Preparing the environment for requirements.txt (no setup)" in result.stderr
    assert "uwsgi.ini sets no virtualenv: add `virtualenv = %(chdir)/.venv`" in result.stderr
    files = app_files("pkg_b==1.0\n", tag="v2")
    files["app.py"] = "import pkg_b\n" + files["app.py"]
    rev, output = deployed(box, "zero", files)
    assert "reused, no installer run" in output          # built by the refused push
    assert page(box, "zero")["packages"]["pkg_b"] == "1.0"
    assert "sets no virtualenv" not in output


def test_environments_work_for_an_unprivileged_account_under_umask_027(world, wheels, uwsgi_runner):
    """The toolkit as `make install` puts it (vendored uv), run by an account
    that is not root, with the tools' umask: what the Emperor of that account
    (the same user) then runs must read the environment."""
    home = os.path.join(world, "home")
    os.chmod(world, 0o755)
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"PREFIX={home}"], check=True, capture_output=True)
    version = os.path.join(home, "app-0123456789ab")
    write(os.path.join(version, "requirements.txt"), "pkg_c==1.0\n")
    write(os.path.join(version, "app.py"), VENV_APP % "v1")
    subprocess.run(["chown", "-R", "nobody:nogroup", home], check=True)
    environ = dict(local_index_environ(wheels), HOME=home, PATH="/usr/bin:/bin")
    result = subprocess.run([os.path.join(home, "bin", "deploy-venv")], cwd=version, env=environ,
                            user="nobody", group="nogroup", extra_groups=[], umask=0o027,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    env = os.readlink(os.path.join(version, ".venv"))
    assert env.startswith(os.path.join(home, "venvs") + "/")
    for private in (os.path.dirname(env), env):
        assert os.stat(private).st_mode & 0o777 == 0o750, private
    for top, dirs, files in os.walk(env):
        for name in dirs + files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                assert os.stat(path).st_mode & 0o002 == 0, path       # nobody else may write
    script = subprocess.run([os.path.join(version, ".venv", "bin", "pkg_c-tool")], user="nobody",
                            capture_output=True, text=True, timeout=30)
    assert script.returncode == 0 and script.stdout.startswith("pkg_c 1.0"), script.stderr
    # a real uWSGI as that account imports the package through the link
    port = free_loopback_port()
    ini = write(os.path.join(world, "vassal.ini"),
                f"[uwsgi]\nplugins = python3\nmaster = true\nuid = nobody\ngid = nogroup\n"
                f"chdir = {version}\nwsgi-file = app.py\nvirtualenv = %(chdir)/.venv\n"
                f"http-socket = 127.0.0.1:{port}\n")
    uwsgi_runner(ini, os.path.join(world, "uwsgi.log"))
    facts = requests.get(f"http://127.0.0.1:{port}/", timeout=10).json()
    assert facts["packages"]["pkg_c"] == "1.0"
