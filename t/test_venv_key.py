"""The environment key: what goes into it (the Python uWSGI really embeds,
the installer, every requirement and constraint file's bytes) and what
deploy-venv refuses because a shared environment cannot depend on it."""
import os
import subprocess

import pytest

from conftest import run_tool, write
from uwsgi_deploy import DeployError
from uwsgi_deploy.venv_key import Interpreter, embedded_interpreter, environment_key, read_requirement_files

PYTHON = Interpreter("/usr/bin/python3.11", "3.11.2", (("version", "3.11.2 (main)"),))


def key_of(directory, requirements=("requirements.txt",), constraints=(), interpreter=PYTHON, installer="uv 1"):
    return environment_key(interpreter, installer, read_requirement_files(requirements, constraints, directory))


def test_the_interpreter_is_the_one_uwsgi_embeds():
    found = embedded_interpreter(dict(os.environ))
    facts = dict(found.facts)
    assert found.executable == os.path.realpath("/usr/bin/python3")   # Debian: python3 -> python3.11
    real = subprocess.run([found.executable, "-c", "import sys; print(sys.version)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert facts["version"] == real and found.version == real.split()[0]
    assert facts["soabi"].startswith("cpython-311")


def test_every_file_that_decides_the_contents_is_in_the_key(world):
    write(os.path.join(world, "a", "requirements.txt"),
          "# app\nflask==3.1.3 \\\n  --hash=sha256:00\n-r base.txt\n--constraint=pins.txt\n")
    write(os.path.join(world, "a", "base.txt"), "sqlalchemy==2.1.9\n-cmore-pins.txt\n")
    write(os.path.join(world, "a", "pins.txt"), "greenlet<4\n")
    write(os.path.join(world, "a", "more-pins.txt"), "click<9\n")
    files = read_requirement_files(["requirements.txt"], [], os.path.join(world, "a"))
    assert [(os.path.basename(f.path), f.role, f.top) for f in files] == [
        ("requirements.txt", "requirement", True), ("base.txt", "requirement", False),
        ("more-pins.txt", "constraint", False), ("pins.txt", "constraint", False)]
    key = key_of(os.path.join(world, "a"))
    assert len(key) == 20 and int(key, 16) >= 0

    # the same bytes elsewhere: the same key (two apps share the environment)
    for name in ("requirements.txt", "base.txt", "pins.txt", "more-pins.txt"):
        write(os.path.join(world, "b", name), open(os.path.join(world, "a", name)).read())
    assert key_of(os.path.join(world, "b")) == key
    # any byte of any of them, a nested constraint included, changes it
    write(os.path.join(world, "b", "more-pins.txt"), "click<8\n")
    assert key_of(os.path.join(world, "b")) != key
    write(os.path.join(world, "b", "more-pins.txt"), "click<9\n")
    write(os.path.join(world, "b", "requirements.txt"), open(os.path.join(world, "a", "requirements.txt")).read() + "\n")
    assert key_of(os.path.join(world, "b")) != key
    # and so do the interpreter and the installer
    other_python = Interpreter("/usr/bin/python3.11", "3.11.9", (("version", "3.11.9 (main)"),))
    assert key_of(os.path.join(world, "a"), interpreter=other_python) != key
    assert key_of(os.path.join(world, "a"), installer="uv 2") != key
    # a constraints file given on its own counts too
    write(os.path.join(world, "a", "extra.txt"), "jinja2<4\n")
    assert key_of(os.path.join(world, "a"), constraints=["extra.txt"]) != key


@pytest.mark.parametrize("text, message", [
    ("flask\n-e git+https://example.org/x.git#egg=x\n", "requirements.txt:2: editable installs (-e)"),
    ("--editable=./lib\n", "requirements.txt:1: editable installs (-e)"),
    ("./vendor/pkg-1.0-py3-none-any.whl\n", "requirements.txt:1: ./vendor/pkg-1.0-py3-none-any.whl: local paths"),
    ("pkg @ file:///srv/pkg.whl\n", "requirements.txt:1: pkg: local paths"),
    ("--find-links wheels\nflask\n", "requirements.txt:1: --find-links: local paths"),
    ("flask\n\n-r https://example.org/r.txt\n", "requirements.txt:3: https://example.org/r.txt: only local files"),
    ("flask\n-r missing.txt\n", "requirements.txt:2: missing.txt: No such file or directory"),
])
def test_what_a_shared_environment_cannot_depend_on_is_refused(world, text, message):
    write(os.path.join(world, "requirements.txt"), text)
    with pytest.raises(DeployError) as caught:
        read_requirement_files(["requirements.txt"], [], world)
    assert str(caught.value).startswith(message), str(caught.value)


def test_deploy_venv_prints_keys_and_refuses_bad_input_in_one_line(world):
    env = dict(os.environ, HOME=world)
    assert "usage: deploy-venv" in run_tool("deploy-venv", "--help", env=env).stdout
    for name in ("one", "two"):
        write(os.path.join(world, name, "requirements.txt"), "flask==3.1.3\n")
    keys = [run_tool("deploy-venv", "--print-key", "--dir", os.path.join(world, name), env=env)
            for name in ("one", "two")]
    assert keys[0].returncode == 0 and keys[0].stdout == keys[1].stdout, keys[0].stderr
    assert not os.path.exists(os.path.join(world, "venvs"))           # --print-key builds nothing

    os.makedirs(os.path.join(world, "one", ".venv"))
    result = run_tool("deploy-venv", "--dir", os.path.join(world, "one"), env=env)
    assert result.returncode == 1
    assert result.stderr == f"deploy-venv: {world}/one/.venv is a directory: take .venv out of the " \
                            "repository (the version's environment is linked there)\n"
    write(os.path.join(world, "two", "requirements.txt"), "flask\n-e .\n")
    result = run_tool("deploy-venv", "--dir", os.path.join(world, "two"), env=env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("deploy-venv: requirements.txt:2: editable installs (-e)")
    result = run_tool("deploy-venv", "--dir", os.path.join(world, "nope"), env=env)
    assert (result.returncode, result.stderr) == (1, f"deploy-venv: {world}/nope: no such directory\n")
    result = run_tool("deploy-venv", "--print-key", "--dir", world, env=dict(env, DEPLOY_VENV_INSTALLER="conda"))
    assert result.returncode == 1 and "DEPLOY_VENV_INSTALLER must be one of uv, pip, not 'conda'" in result.stderr

