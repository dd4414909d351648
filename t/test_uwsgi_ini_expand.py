"""uwsgi-ini-expand: the app's ini read as uWSGI reads it, refusals, the
deployer's lines, and values round-tripped through a real uWSGI."""
import os
import re
import subprocess

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import APPS, UWSGI, run_tool, uwsgi_reads, write
from sandbox_server import free_port
from uwsgi_deploy import DeployError
from uwsgi_deploy.envfile import EnvEntry
from uwsgi_deploy.uwsgi_ini import escape_value, expand_ini
from uwsgi_deploy.uwsgi_options import read_lines, refusal

PLUGINS = "/usr/lib/uwsgi/plugins"

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
    "$(HOME)", "$(NO_SUCH_VAR)", "$$", "$", "a$b", "$HOME",
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
    ("A=1\n1BAD=x\n", ":2: invalid variable name (use letters"),
    ("A=1\nNOVALUE\n", ":2: no '=' on this line"),
    ("A='x\ny'\n", ":1: A: a newline cannot be passed"),
    ("A='%(chdir)'\n", ":1: A: '%(...)' would be expanded"),
    # secrets that lost their NAME=, or a private key wrapped over lines
    ("A=1\nsk_live_51HxyzSECRET\n", ":2: no '=' on this line"),
    ("KEY=-----BEGIN\nMIIEvQIBADANBgkqh+kiG9w0SECRET/AQEFAASC=abc\n", ":2: invalid variable name"),
    ("A=1\nUWSGI_HTTP11_SOCKET=0.0.0.0:9090\n", ":2: UWSGI_HTTP11_SOCKET: names starting with UWSGI_ "
                                                 "become uWSGI options when the app reloads"),
])
def test_bad_env_file_is_refused_with_line(world, text, message):
    env_file = write(os.path.join(world, "env"), text)
    ini = write(os.path.join(world, "uwsgi.ini"), APP_INI)
    result = run_tool("uwsgi-ini-expand", "--env", env_file, ini)
    assert result.returncode == 1
    assert result.stderr.startswith(f"uwsgi-ini-expand: {env_file}{message}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "SECRET" not in result.stderr and "BAD" not in result.stderr.replace("UWSGI", "")


def test_uwsgi_reads_uwsgi_variables_as_options(world):
    """Why UWSGI_ names are refused: a vassal's `env` lines stay in its
    environment when it re-execs itself on a reload, and uWSGI then reads
    UWSGI_<OPTION> variables as options."""
    ini = write(os.path.join(world, "uwsgi.ini"), "[uwsgi]\nmaster = true\n")
    assert ("http11-socket", "0.0.0.0:9090") in uwsgi_reads(ini, env={"UWSGI_HTTP11_SOCKET": "0.0.0.0:9090"})


# -- the app's uwsgi.ini, read as uWSGI reads it -------------------------------

# (uwsgi.ini, line refused, what the refusal says): each is a way in that
# skips nginx, or a line the deployer's check used to read differently.
HOSTILE_INIS = [
    ("[uwsgi]\nmodule = app\nhttp11-socket = 0.0.0.0:9090\n", 3, "option 'http11-socket' opens a way in"),
    ("[uwsgi]\nhttprouter = 0.0.0.0:9090\n", 2, "option 'httprouter' opens a way in"),
    ("[uwsgi]\nundeferred-shared-socket = 0.0.0.0:9090\n", 2, "option 'undeferred-shared-socket' opens"),
    ("[uwsgi]\nfastrouter = 0.0.0.0:9090\n", 2, "option 'fastrouter' opens a way in"),
    ("[uwsgi]\nplugins = fastrouter\n", 2, "option 'plugins' may load only python3"),
    ("[uwsgi]\nplugins = /tmp/evil_plugin.so\n", 2, "option 'plugins' may load only python3"),
    ("[uwsgi]\nrawrouter = 0.0.0.0:9090\n", 2, "option 'rawrouter' opens a way in"),
    ("[uwsgi]\nsslrouter = 0.0.0.0:9090,c,k\n", 2, "option 'sslrouter' opens a way in"),
    ("[uwsgi]\nhttps = 0.0.0.0:9090,c,k\n", 2, "option 'https' opens a way in"),
    ("[uwsgi]\nset = http-socket=0.0.0.0:9090\n", 2, "option 'set' is uWSGI's configuration logic"),
    # a "comment" that Python's splitlines() cut in two, hiding the next line
    ("[uwsgi]\n; note\x0c[other]\nhttp-socket = 0.0.0.0:9090\n", 3, "option 'http-socket' is set"),
    ("[uwsgi]\n; note\u2028[other]\nsocket = 0.0.0.0:9090\n", 3, "option 'socket' is set"),
    ("[uwsgi]\n; note\r[other]\nsocket = 0.0.0.0:9090\n", 3, "option 'socket' is set"),
    # includes: options the check would never see
    ("[uwsgi]\nini = %p:more\n[more]\nhttp-socket = 0.0.0.0:9090\n", 2, "option 'ini' loads configuration"),
    ("[uwsgi]\ninclude = more.ini\n", 2, "option 'include' loads configuration"),
    ("[uwsgi]\ninherit = more.ini\n", 2, "option 'inherit' loads configuration"),
    ("[uwsgi]\nconfig = more.ini\n", 2, "option 'config' loads configuration"),
    ("[uwsgi]\njson = more.json\n", 2, "option 'json' loads configuration"),
    ("[uwsgi]\nyaml = more.yml\n", 2, "option 'yaml' loads configuration"),
    ("[uwsgi]\nxml = more.xml\n", 2, "option 'xml' loads configuration"),
    ("[uwsgi]\ndeclare-option = door=http-socket=$1\ndoor = 0.0.0.0:9090\n", 2, "option 'declare-option'"),
    ("[uwsgi]\nenvdir = envs\n", 2, "option 'envdir' loads configuration"),
    ("[uwsgi]\nemperor = %d/other-vassals\n", 2, "option 'emperor' loads configuration"),
    # who can reach the sockets
    ("[uwsgi]\nchmod-socket = 666\n", 2, "option 'chmod-socket' changes who can reach"),
    ("[uwsgi]\nchown-socket = nobody\n", 2, "option 'chown-socket' changes who can reach"),
    ("[uwsgi]\numask = 000\n", 2, "option 'umask' changes who can reach"),
    ("[uwsgi]\nmaster-fifo = /tmp/fifo\n", 2, "option 'master-fifo' changes who can reach"),
    ("[uwsgi]\nabstract-socket = true\n", 2, "option 'abstract-socket' changes who can reach"),
    # UWSGI_ names in the ini's own env lines, and the escaping's placeholders
    ("[uwsgi]\nenv = UWSGI_HTTP_SOCKET=0.0.0.0:9090\n", 2, "option 'env' belongs in environment.sh"),
    ("[uwsgi]\nuwsgi_deploy_dollar = x\n", 2, "option 'uwsgi_deploy_dollar' is a placeholder the deployer"),
    # lines uWSGI reads differently than they look
    ("[uwsgi]\nmodule = app%\nhttp-socket = 0.0.0.0:9090\n", 2, "a '%' ending a line makes uWSGI join it"),
    ("[uwsgi] ; main section\nmodule = app\n", 1, "malformed section header: uWSGI reads the name "
                                                   "'uwsgi] ; main sectio'"),
    ("[uwsgi]\n%shttp-socket = 0.0.0.0:9090\n", 2, "a %-variable in an option name"),
    ("[uwsgi]\nmodule = app\x00\n", 2, "a NUL byte"),
]


@pytest.mark.parametrize("text, line, message", HOSTILE_INIS)
def test_hostile_ini_is_refused_naming_line_and_option(world, text, line, message):
    write(os.path.join(world, "more.ini"), "[uwsgi]\nhttp-socket = 0.0.0.0:9090\n")
    ini = write(os.path.join(world, "uwsgi.ini"), text)
    result = run_tool("uwsgi-ini-expand", ini)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"uwsgi-ini-expand: {ini}:{line}: {message}"), result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("text, key", [
    ("[uwsgi]\n; note\x0c[other]\nhttp-socket = 127.0.0.1:0\n", "http-socket"),
    ("[uwsgi]\nini = %p:more\n[more]\nhttp-socket = 127.0.0.1:0\n", "http-socket"),
    ("[uwsgi]\ninclude = more.ini\n", "http-socket"),
    ("[uwsgi]\nset = http11-socket=127.0.0.1:0\n", "http11-socket"),
    ("[uwsgi]\nmodule = app%\nhttp-socket = 127.0.0.1:0\n", "module"),
])
def test_the_refused_tricks_are_real_for_uwsgi(world, text, key):
    """The real uWSGI does read these as the refusals say: it takes the
    option from behind a form feed, an include or `set`, and joins lines."""
    write(os.path.join(world, "more.ini"), "[uwsgi]\nhttp-socket = 127.0.0.1:0\n")
    options = uwsgi_reads(write(os.path.join(world, "uwsgi.ini"), text))
    assert key in [k for k, v in options], options
    if key == "module":
        assert options == [("module", "apphttp-socket = 127.0.0.1:0")]


SEPARATORS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"]
BLANKS = ["", " ", "\t", "\r", " \t"] + SEPARATORS[:2]
HEADERS = ["[uwsgi]", "[other]", "[uwsgi ]", "[ uwsgi]", "[uwsgiX", "[uwsgi]]", "[", "[]", "[uwsgi] ; c"]
KEYS = ["foo", "bar_b", "Baz", "a b", "", ";x", "#x", "[x", "x]"]
VALUES = ["v", " ", "\t", "=", ";", "#", "[", "]", "%%", "[uwsgi]", "[other]", "; c"] + SEPARATORS
line_text = st.one_of(
    st.tuples(st.sampled_from(BLANKS), st.sampled_from(HEADERS), st.sampled_from(BLANKS)).map("".join),
    st.tuples(st.sampled_from(BLANKS), st.sampled_from(KEYS), st.sampled_from(["=", " = ", "\t=", "", "=="]),
              st.lists(st.sampled_from(VALUES), max_size=5).map("".join), st.sampled_from(BLANKS)).map("".join),
    st.lists(st.sampled_from(BLANKS + HEADERS + VALUES), max_size=5).map("".join))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(line_text, min_size=1, max_size=10), st.booleans())
def test_options_are_read_exactly_as_uwsgi_reads_them(lines, final_newline):
    """Differential: for generated inis full of headers, comments, blanks,
    CRs and Unicode line separators, the check sees in [uwsgi] exactly the
    options (key and value, in order) that /usr/bin/uwsgi collects."""
    import tempfile
    text = "[uwsgi]\n" + "\n".join(lines) + ("\n" if final_newline else "")
    expected = [(line.key, line.value) for line in read_lines(text, "x")
                if line.kind == "option" and line.section == "uwsgi"]
    with tempfile.NamedTemporaryFile("w", suffix=".ini", dir="/tmp", encoding="utf-8", newline="") as ini:
        ini.write(text)
        ini.flush()
        assert uwsgi_reads(ini.name) == expected


def uwsgi_option_table():
    """{option: help} of the real uwsgi with every plugin Debian ships."""
    plugins = sorted(name[:-len("_plugin.so")] for name in os.listdir(PLUGINS) if name.endswith("_plugin.so"))
    result = subprocess.run([UWSGI, "--plugins", ",".join(plugins), "--help"], capture_output=True, text=True,
                            errors="replace", timeout=60)
    return dict(re.findall(r"^\s+(?:-\S\|)?--(\S+)\s+(.*)$", result.stdout, re.M))


LISTENER_HELP = re.compile(r"\bbind|\bon the specified (address|port|UNIX socket)|router/server|stats server|"
                           r"subscription server|shared socket|zerg server|zergpool|to a zerg|emperor proxy|"
                           r"notification socket|expose a unix socket|pty server|tuntap (router|device)|"
                           r"embedded snmp|member of a legion|subscribe to", re.I)
INCLUDE_HELP = re.compile(r"load config|config from|configuration using|config template|"
                          r"\binclude (the specified|config)|\binject\b|with the specified config|"
                          r"declare a new|envdir|containing uwsgi section|run the Emperor|spawn the emperor", re.I)
ACCESS_HELP = re.compile(r"chmod|chown|umask|enable the master fifo|abstract mode", re.I)


def test_every_listener_include_and_socket_permission_in_uwsgis_table_is_refused():
    table = uwsgi_option_table()
    assert len(table) > 1000, "the plugins did not load"
    flagged = {name for name, text in table.items()
               if LISTENER_HELP.search(text) or INCLUDE_HELP.search(text) or ACCESS_HELP.search(text)}
    assert {"http11-socket", "httprouter", "fastrouter", "sslrouter", "ini", "include", "umask"} <= flagged
    assert sorted(name for name in flagged if refusal(name) is None) == []


@pytest.mark.parametrize("line, option", [
    ("socket = /tmp/x.sock", "socket"), ("http-socket = :8000", "http-socket"),
    ("stats = /tmp/s", "stats"), ("daemonize = /tmp/l", "daemonize"),
    ("pidfile = /tmp/p", "pidfile"), ("logto = /tmp/l", "logto"), ("  chdir = /srv", "chdir"),
    ("HTTP_SOCKET = :1", "HTTP_SOCKET"), ("uwsgi-socket = x", "uwsgi-socket"),
    ("log-maxsize = 0", "log-maxsize"),
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


def test_an_ini_that_is_not_a_regular_file_is_refused_at_once(world):
    fifo = os.path.join(world, "uwsgi.ini")
    os.mkfifo(fifo)   # nobody writes it: reading it would block forever
    result = run_tool("uwsgi-ini-expand", fifo, timeout=20)
    assert result.returncode == 1
    assert result.stderr == f"uwsgi-ini-expand: {fifo}: not a regular file (a FIFO)\n"


def test_users_text_is_kept_and_the_deployers_block_follows_under_its_own_header(world):
    text = "; comment\n[uwsgi]\nmodule = a\nprocname-prefix = B=2  ; keep\n\n[other]\nenv = C=3"
    ini = write(os.path.join(world, "uwsgi.ini"), text)
    env_file = write(os.path.join(world, "env"), "D=4\n")
    result = run_tool("uwsgi-ini-expand", "--env", env_file, "--chdir", "/srv/app", ini)
    assert result.returncode == 0, result.stderr
    assert result.stdout == text + "\n\n[uwsgi]\n; added by uwsgi-deploy\n" \
        "set-placeholder = uwsgi_deploy_dollar=$\nset-placeholder = uwsgi_deploy_at=@\n" \
        "chdir = /srv/app\nenv = LC_CTYPE=C.UTF-8\nenv = D=4\n"


@pytest.mark.parametrize("text", [
    "[uwsgi]\nmodule = app\n  [other]\nmaster = true\n",     # an indented header ends [uwsgi] for uWSGI
    "[uwsgi]\nmodule = app\n[other]\nx = 1\n",
    "[other]\nx = 1\n[uwsgi]\nmodule = app\n[more]\n",
    "[uwsgi]\nmodule = app",                                   # no newline at the end
])
def test_uwsgi_applies_the_deployers_lines_whatever_precedes_them(world, text):
    """Read by the real uWSGI, the expanded ini ends with the deployer's
    chdir and env lines, in the [uwsgi] section."""
    ini = write(os.path.join(world, "uwsgi.ini"), text)
    env_file = write(os.path.join(world, "env"), "SECRET_KEY=k\n")
    result = run_tool("uwsgi-ini-expand", "--env", env_file, "--chdir", "/srv/app", ini, text=False)
    assert result.returncode == 0, result.stderr
    expanded = os.path.join(world, "expanded.ini")
    with open(expanded, "wb") as stream:
        stream.write(result.stdout)
    assert uwsgi_reads(expanded)[-3:] == [("chdir", "/srv/app"), ("env", "LC_CTYPE=C.UTF-8"),
                                          ("env", "SECRET_KEY=k")]


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
