"""uwsgi-ini-expand: ini editing, refusals, and values round-tripped through a real uWSGI."""
import json
import os
import re

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import APPS, run_tool, write
from uwsgi_deploy.sandbox import free_port
from uwsgi_deploy import DeployError
from uwsgi_deploy.envfile import EnvEntry
from uwsgi_deploy.uwsgi_ini import escape_value, expand_ini

APP_INI = """[uwsgi]
plugins = python3
master = true
processes = 1
wsgi-file = envapp.py

[other]
http-socket = 127.0.0.1:1
"""

# Values an app may well need in its environment, chosen to hit every rewrite
# uWSGI applies to ini values, and the ways a dotenv file quotes things.
CORPUS = [
    "", "plain", "50%", "%", "%%", "%d", "%n%s%x", "50%off", "end%", "%%%",
    "$(HOME)", "$(NO_SUCH_VAR)", "$$", "$", "a$b", "${HOME}x"[:0] + "$HOME",
    "@(/etc/hostname)", "@", "user@example.com", "@(nonexistent)",
    "%(chdir)", "%(foo)", "%( x )", "%(uwsgi_deploy_dollar)", "%%(foo)",
    "a;b", "#x", ";x", "x ;comment", "x #comment", '"q"', "'q'", "\"'mixed'\"",
    "back\\slash", "trail\\", "\\n literal", "`cmd`", "a=b=c", "=", "  lead",
    "\tlead tab", "in\ttab", "ünïcødé ✓ 日本語 🚀", "x" * 4000, "{{x}}", "[section]",
    "postgres://u:p%40ss@db:5432/x?sslmode=require", "[a-z]+\\d{2,}$",
    "a\x01b", "a\x1bb", "a\x7fb", "a\rb", "a\u2028b", "a\u0085b", "a\x0bb", "a\x0cb",
    "trailing ", "trailing\t", "two\nlines", "nul\0byte", "\n", " ",
]


def uwsgi_can_carry(value):
    """The documented refusal rule, written independently of the code."""
    return not (re.search(r"[\n\0]", value) or re.search(r"[ \t\r\v\f]\Z", value)
                or re.search(r"%\([^)]*\)", value))


def dotenv_single_quoted(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_app_with_values(world, uwsgi_runner, values):
    """Expand an ini holding values as V0..Vn through the bin tool, run it under
    real uWSGI, and return the app's os.environ."""
    port = free_port()
    env_file = write(os.path.join(world, "environment.sh"), "".join(
        f"V{i}={dotenv_single_quoted(value)}\n" for i, value in enumerate(values)))
    ini = write(os.path.join(world, "uwsgi.ini"), APP_INI)
    # bytes, not text: universal newlines would turn a CR in a value into a line break
    result = run_tool("uwsgi-ini-expand", "--env", env_file, "--chdir", APPS, ini, text=False)
    assert result.returncode == 0, result.stderr
    expanded = write(os.path.join(world, "expanded.ini"), result.stdout.decode()
                     + f"[uwsgi]\nhttp-socket = 127.0.0.1:{port}\n")
    instance = uwsgi_runner(expanded, os.path.join(world, "uwsgi.log"))
    try:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=10).json()
    finally:
        instance.stop()


def test_corpus_round_trips_or_is_refused(world, uwsgi_runner):
    assert len(CORPUS) >= 40
    carried = [v for v in CORPUS if uwsgi_can_carry(v)]
    refused = [v for v in CORPUS if not uwsgi_can_carry(v)]
    for value in refused:
        with pytest.raises(DeployError):
            escape_value(value, "f:1: V")
    environ = run_app_with_values(world, uwsgi_runner, carried)
    mismatches = [(i, v, environ.get(f"V{i}")) for i, v in enumerate(carried)
                  if environ.get(f"V{i}") != v]
    assert mismatches == []
    print(f"corpus: {len(carried)} round-tripped, {len(refused)} refused")


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
                min_size=1, max_size=8))
def test_any_text_round_trips_or_is_refused(uwsgi_runner, values):
    """Property: whatever the text, it is carried exactly or refused, never mangled."""
    import tempfile
    import shutil
    world = tempfile.mkdtemp(prefix="ud-", dir="/tmp")
    try:
        carried = []
        for value in values:
            try:
                escape_value(value, "f:1: V")
                carried.append(value)
            except DeployError:
                assert not uwsgi_can_carry(value)
        # python-dotenv expands ${...} even in single quotes: the file cannot say it.
        carried = [v for v in carried if "${" not in v]
        if not carried:
            return
        environ = run_app_with_values(world, uwsgi_runner, carried)
        assert [environ.get(f"V{i}") for i in range(len(carried))] == carried
    finally:
        shutil.rmtree(world, ignore_errors=True)


def test_refusal_names_file_line_and_variable_never_the_value(world):
    env_file = write(os.path.join(world, "env"), "OK=1\nSECRET='hunter2 '\n")
    ini = write(os.path.join(world, "uwsgi.ini"), APP_INI)
    result = run_tool("uwsgi-ini-expand", "--env", env_file, ini)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"uwsgi-ini-expand: {env_file}:2: SECRET: trailing whitespace would be stripped by uWSGI\n"
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize("text, message", [
    ("A=1\nthis is not a binding\n", ":2: cannot parse this line"),
    ("A=1\n1BAD=x\n", ":2: invalid variable name '1BAD'"),
    ("A=1\nNOVALUE\n", ":2: NOVALUE has no '='"),
    ("A='x\ny'\n", ":1: A: a newline cannot be passed"),
    ("A='%(chdir)'\n", ":1: A: '%(...)' would be expanded"),
])
def test_bad_env_file_is_refused_with_line(world, text, message):
    env_file = write(os.path.join(world, "env"), text)
    ini = write(os.path.join(world, "uwsgi.ini"), APP_INI)
    result = run_tool("uwsgi-ini-expand", "--env", env_file, ini)
    assert result.returncode == 1
    assert result.stderr.startswith(f"uwsgi-ini-expand: {env_file}{message}")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("line, option", [
    ("socket = /tmp/x.sock", "socket"), ("http-socket = :8000", "http-socket"),
    ("http = :8000", "http"), ("stats = /tmp/s", "stats"), ("daemonize = /tmp/l", "daemonize"),
    ("pidfile = /tmp/p", "pidfile"), ("logto = /tmp/l", "logto"), ("  chdir = /srv", "chdir"),
    ("HTTP_SOCKET = :1", "http-socket"), ("uwsgi-socket = x", "uwsgi-socket"),
])
def test_owned_option_is_refused_with_name_and_line(world, line, option):
    ini = write(os.path.join(world, "uwsgi.ini"), f"[uwsgi]\nmodule = app\n{line}\n")
    result = run_tool("uwsgi-ini-expand", ini)
    assert result.returncode == 1
    assert result.stderr == f"uwsgi-ini-expand: {ini}:3: option '{option}' is set by the deployer; remove it\n"


def test_owned_option_in_another_section_is_not_ours(world):
    ini = write(os.path.join(world, "uwsgi.ini"), "[uwsgi]\nmodule = app\n[dev]\nsocket = x\n")
    assert run_tool("uwsgi-ini-expand", ini).returncode == 0


@pytest.mark.parametrize("text, message", [
    ("module = app\n", ":1: option outside any [section]"),
    ("[uwsgi]\nmodule = app\nthis line has no equals\n", ":3: cannot parse this line"),
    ("[other]\nmodule = app\n", ": no [uwsgi] section"),
])
def test_broken_ini_is_refused_with_line(world, text, message):
    ini = write(os.path.join(world, "uwsgi.ini"), text)
    result = run_tool("uwsgi-ini-expand", ini)
    assert result.returncode == 1
    assert result.stderr.startswith(f"uwsgi-ini-expand: {ini}{message}")
    assert len(result.stderr.splitlines()) == 1


def test_missing_ini_is_refused(world):
    result = run_tool("uwsgi-ini-expand", f"{world}/nope.ini")
    assert result.returncode == 1
    assert result.stderr == f"uwsgi-ini-expand: {world}/nope.ini: no such file\n"


def test_lines_go_into_uwsgi_section_and_repeated_keys_survive(world):
    ini = write(os.path.join(world, "uwsgi.ini"),
                "; comment\n[uwsgi]\nenv = A=1\nenv = B=2  ; keep\n\n[other]\nenv = C=3\n")
    env_file = write(os.path.join(world, "env"), "D=4\n")
    result = run_tool("uwsgi-ini-expand", "--env", env_file, "--chdir", "/srv/app", ini)
    assert result.returncode == 0, result.stderr
    sections = re.split(r"^\[", result.stdout, flags=re.M)
    uwsgi_part = next(s for s in sections if s.startswith("uwsgi]"))
    other_part = next(s for s in sections if s.startswith("other]"))
    assert "env = A=1\nenv = B=2  ; keep\n" in uwsgi_part
    assert "chdir = /srv/app\nenv = LC_CTYPE=C.UTF-8\nenv = D=4\n" in uwsgi_part
    assert other_part == "other]\nenv = C=3\n"
    assert result.stdout.startswith("; comment\n[uwsgi]\n")


def test_later_env_file_wins_and_references_earlier(world):
    repo_env = write(os.path.join(world, "repo.sh"), "export A=repo\nB=repo\n")
    home_env = write(os.path.join(world, "home.sh"), 'B=home\nC="${A}-${B}"\n')
    ini = write(os.path.join(world, "uwsgi.ini"), "[uwsgi]\n")
    result = run_tool("uwsgi-ini-expand", "--env", repo_env, "--env", home_env, ini)
    assert result.returncode == 0, result.stderr
    env_lines = [line for line in result.stdout.splitlines() if line.startswith("env = ")]
    assert env_lines == ["env = LC_CTYPE=C.UTF-8", "env = A=repo", "env = B=home", "env = C=repo-home"]


@pytest.mark.parametrize("line, warned", [
    ("A=$HOME/x", True), ("A=$(date)", True), ("A=`date`", True), ('A="$HOME"', True),
    ("A='${HOME}'", True), ("A='$HOME'", False), ("A=${HOME}", False), ("A=50$", False),
])
def test_shell_looking_values_are_warned_about_without_value(world, line, warned):
    env_file = write(os.path.join(world, "env"), f"X=1\n{line}\n")
    ini = write(os.path.join(world, "uwsgi.ini"), "[uwsgi]\n")
    result = run_tool("uwsgi-ini-expand", "--env", env_file, ini)
    assert result.returncode == 0
    if warned:
        assert result.stderr.startswith(f"uwsgi-ini-expand: warning: {env_file}:2: A: ")
        assert "HOME" not in result.stderr.split(": A: ")[1].replace("$VAR", "").replace("${VAR}", "")
    else:
        assert result.stderr == ""


def test_expand_ini_adds_extra_owned_options_escaped(world):
    ini = write(os.path.join(world, "uwsgi.ini"), "[uwsgi]\nmodule = app\n")
    text = expand_ini(ini, [EnvEntry("A", "1", "f", 1)], "/srv/a", extra=[("socket", "/run/a@b.sock")])
    assert text.endswith("env = A=1\nsocket = /run/a%(uwsgi_deploy_at)b.sock\n")
    assert json  # used by run_app_with_values through requests' json()
