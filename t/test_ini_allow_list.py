"""The uwsgi.ini allow-list (issue 21, item 1): every bypass of the old
deny-list is shown real with /usr/bin/uwsgi's own parser (uwsgi_reads), then
refused with file, line and option; what a Python web app tunes still passes."""
import os
import re
import subprocess

import pytest

from conftest import ROOT, UWSGI, run_tool, uwsgi_reads, write
from uwsgi_deploy import DeployError
from uwsgi_deploy.envfile import EnvEntry
from uwsgi_deploy.uwsgi_ini import UwsgiIni, deploy_options
from uwsgi_deploy.uwsgi_options import check_app_ini

pytestmark = pytest.mark.emperor   # it runs /usr/bin/uwsgi (its parser only)

# What the deployer appends (candidate.VassalConfig.text), as it appends it.
DEPLOYER = [("chdir", "/srv/app"), ("need-app", "true"), ("logto", "/dev/stderr"),
            ("stats", "/srv/run/app.stats"), ("socket", "/srv/run/app.socket")]


def expanded(text):
    """text with the deployer's block appended as the deployer appends it,
    without checking text (what today's main would run, had it let it through)."""
    ini = UwsgiIni.__new__(UwsgiIni)
    ini.original, ini.added, ini.path = text if text.endswith("\n") else text + "\n", [], "x"
    ini.add_options(deploy_options([EnvEntry("SECRET_KEY", "k", "env", 1)], DEPLOYER[0][1], extra=[]))
    ini.add_options(DEPLOYER[1:])
    return ini.text()


def refused(text):
    with pytest.raises(DeployError) as caught:
        check_app_ini(text, "uwsgi.ini")
    return str(caught.value)


# (uwsgi.ini, env for uWSGI, what uWSGI collects from it, line refused, refusal)
BYPASSES = [
    # `set` with a %-variable that expands to nothing builds any option name
    ("[uwsgi]\nmodule = app\nset = %xhttp-socket=0.0.0.0:9090\n", {},
     ("http-socket", "0.0.0.0:9090"), 3, "option 'set' is uWSGI's configuration logic"),
    # ... another app's live socket: uWSGI unlinks the path and binds its own
    ("[uwsgi]\nset = %xsocket=%d../run/B.socket\n", {},
     ("socket", "{dir}/../run/B.socket"), 2, "option 'set' is uWSGI's configuration logic"),
    ("[uwsgi]\nset = %xchmod-socket=666\n", {}, ("chmod-socket", "666"), 2, "option 'set' is uWSGI's"),
    # env lines stay in the environment, read as options after a reload
    ("[uwsgi]\nenv = %xUWSGI_HTTP_SOCKET=0.0.0.0:9090\n", {},
     ("env", "UWSGI_HTTP_SOCKET=0.0.0.0:9090"), 2, "option 'env' belongs in environment.sh"),
    ("[uwsgi]\nenv = @(more.env)\n", {}, ("env", "UWSGI_HTTP_SOCKET=0.0.0.0:9090"), 2, "option 'env' belongs"),
    ("[uwsgi]\nfor-readline = more.env\nenv = %(_)\nendfor =\n", {},
     ("env", "UWSGI_HTTP_SOCKET=0.0.0.0:9090"), 2, "option 'for-readline' is uWSGI's configuration logic"),
    # a UDP listener anyone on the network can write the cache through
    ("[uwsgi]\ncache2 = name=c,items=10,udp=0.0.0.0:9091\n", {},
     ("cache2", "name=c,items=10,udp=0.0.0.0:9091"), 2, "option 'cache2' opens a way in"),
    # values uWSGI fills from elsewhere: a file, a command, the environment
    ("[uwsgi]\nmodule = @(more.env)\n", {}, ("module", "UWSGI_HTTP_SOCKET=0.0.0.0:9090"), 2,
     "option 'module': '$(...)' and '@(...)' in a value"),
    ("[uwsgi]\nmodule = @(exec://echo ran-a-command)\n", {}, ("module", "ran-a-command"), 2,
     "option 'module': '$(...)' and '@(...)' in a value"),
    ("[uwsgi]\nmodule = @%x(exec://echo ran-a-command)\n", {}, ("module", "ran-a-command"), 2,
     "option 'module': '$(...)' and '@(...)' in a value"),
    # $(VAR) is expanded again: a variable holding @(file) reads the file
    ("[uwsgi]\nprocesses = $(WEB)\n", {"WEB": "@(more.env)"}, ("processes", "UWSGI_HTTP_SOCKET=0.0.0.0:9090"), 2,
     "option 'processes': '$(...)' and '@(...)' in a value"),
    # placeholders name any option, the deployer's secrets included
    ("[uwsgi]\nprocname-prefix = %%(env)\n", {}, ("procname-prefix", "LC_CTYPE=C.UTF-8"), 2,
     "option 'procname-prefix': placeholder %(env) would be filled with what the deployer writes"),
    ("[uwsgi]\nprocname-prefix = %%%x(env)\n", {}, ("procname-prefix", "LC_CTYPE=C.UTF-8"), 2,
     "option 'procname-prefix': a %-variable right before '('"),
    ("[uwsgi]\nprocname-prefix = %x(env)\n", {}, ("procname-prefix", "(env)"), 2,
     "option 'procname-prefix': a %-variable right before '('"),
]


@pytest.mark.parametrize("text, env, collected, line, message", BYPASSES)
def test_each_bypass_is_real_for_uwsgi_and_refused(world, text, env, collected, line, message):
    write(os.path.join(world, "more.env"), "UWSGI_HTTP_SOCKET=0.0.0.0:9090\n")
    ini = write(os.path.join(world, "uwsgi.ini"), expanded(text))
    key, value = collected
    assert (key, value.format(dir=world)) in uwsgi_reads(ini, env=env)
    result = run_tool("uwsgi-ini-expand", write(os.path.join(world, "app.ini"), text))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"uwsgi-ini-expand: {world}/app.ini:{line}: {message}"), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_an_unclosed_if_swallowed_the_deployers_block_and_is_refused(world):
    """uWSGI skips every line after an unclosed if-*: the deployer's socket
    too (so this uWSGI stops, having none), where the same file without the
    if-* line gets it."""
    def run(text):
        path = write(os.path.join(world, "uwsgi.ini"), expanded(text))
        return subprocess.run([UWSGI, "--ini", path, "--show-config", "--chdir", "/nonexistent/x"],
                              capture_output=True, text=True, errors="replace", timeout=30, cwd=world)
    swallowed = run("[uwsgi]\nmodule = app\nif-exists = /nonexistent\n")
    assert "The -s/--socket option is missing" in swallowed.stdout + swallowed.stderr
    kept = run("[uwsgi]\nmodule = app\n")
    assert "socket = /srv/run/app.socket" in kept.stdout + kept.stderr
    assert refused("[uwsgi]\nmodule = app\nif-exists = /nonexistent\n") == (
        "uwsgi.ini:3: option 'if-exists' is uWSGI's configuration logic, which can set or skip any option; "
        "remove it")


@pytest.mark.parametrize("text", [
    "[uwsgi]\nmodule = app\n[other]\nx = 1",
    "; c\n[uwsgi]\r\nmodule = app\r\nprocesses = 2\r\n",
    "[uwsgi]\nmodule = app\n[uwsgi]\n; the end, no newline",
    "[uwsgi]\nwsgi-file = app.py\nvirtualenv = %(chdir)/.venv\nprocesses = %k\n\n\n",
])
def test_the_deployers_block_is_what_uwsgi_applies_last(world, text):
    """Whatever an accepted uwsgi.ini holds, the real uWSGI collects the
    deployer's lines last, in [uwsgi], so they win."""
    check_app_ini(text, "uwsgi.ini")
    options = uwsgi_reads(write(os.path.join(world, "uwsgi.ini"), expanded(text)))
    tail = [DEPLOYER[0], ("env", "LC_CTYPE=C.UTF-8"), ("env", "SECRET_KEY=k"), *DEPLOYER[1:]]
    assert options[-len(tail):] == tail, options
    assert [key for key, value in options].count("chdir") == 1


@pytest.mark.parametrize("line", [
    "module = hello:application", "wsgi-file = app.py", "callable = app", "mount = /api=api.py",
    "virtualenv = %(chdir)/.venv", "plugins = python3", "processes = %k", "threads = 4",
    "enable-threads = true", "harakiri = 30", "max-requests = 1000", "buffer-size = 32768",
    "post-buffering = 8192", "static-map = /static=%(chdir)/static", "offload-threads = 2",
    "lazy-apps = true", "master = true", "vacuum = true", "die-on-term = true",
    "single-interpreter = true", "need-app = true", "thunder-lock = true", "listen = 1024",
    "procname-prefix = %(module)-", "add-header = X-Frame-Options: DENY", "log-slow = 500",
    'logformat = %(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) %(msecs)',
])
def test_what_a_web_app_tunes_is_allowed(line):
    check_app_ini(f"[uwsgi]\nmodule = app\n{line}\n", "uwsgi.ini")


@pytest.mark.parametrize("name", ["env", "socket", "stats", "logto", "attach-daemon", "set-placeholder",
                                  "uwsgi_deploy_at", "uwsgi_deploy_dollar"])
def test_a_placeholder_of_what_the_deployer_writes_is_refused(name):
    assert refused(f"[uwsgi]\nmodule = app\nprocname-append = -%({name})\n") == (
        f"uwsgi.ini:3: option 'procname-append': placeholder %({name}) would be filled with what the deployer "
        "writes (use %(chdir) or an option this file sets)")


def test_the_deployer_writes_no_option_the_check_does_not_know(world):
    """Every option of the deployer's block (as candidate.VassalConfig writes
    it, log cap and all) is chdir or in DEPLOYER_WRITES, so no placeholder
    in the app's values can read it."""
    from types import SimpleNamespace
    from uwsgi_deploy.candidate import VassalConfig
    from uwsgi_deploy.uwsgi_options import DEPLOYER_WRITES, read_lines
    version = SimpleNamespace(log=f"{world}/a.log", log_backup=f"{world}/a.log.1", stats_socket=f"{world}/a.stats")
    settings = SimpleNamespace(vassal_log_max_mb=1, ini_allow="")
    ini = write(os.path.join(world, "uwsgi.ini"), "[uwsgi]\nmodule = app\n")
    text = VassalConfig(settings, version, ini, (EnvEntry("A", "1", "env", 1),), world).text(("socket", "s"))
    written = {line.key for line in read_lines(text, "x") if line.kind == "option"} - {"module"}
    assert {"env", "attach-daemon", "stats", "logto", "socket", "set-placeholder"} <= written
    assert written - DEPLOYER_WRITES == {"chdir"}


def test_everything_off_the_list_is_refused_naming_the_setting():
    assert refused("[uwsgi]\nmodule = app\nroute = .* break:403\n") == (
        "uwsgi.ini:3: option 'route' is not on the allow-list of uwsgi.ini options (docs/security.md); "
        "remove it, or ask the server's operator to allow it (DEPLOY_INI_ALLOW)")
    for line in ("attach-daemon = sleep 1", "exec-as-user = id", "hook-pre-app = exec:id", "cron = -1 -1 -1 -1 -1 id",
                 "mule = x.py", "uid = nobody", "Module = app", "module_ = app", "%%module = app",
                 "$(X) = 1", "@(f) = 1"):
        assert "uwsgi.ini:2: option " in refused(f"[uwsgi]\n{line}\n"), line


def test_the_operator_widens_the_list_in_deploy_conf_but_never_with_what_undoes_it(world):
    ini = write(os.path.join(world, "uwsgi.ini"), "[uwsgi]\nmodule = app\nroute = .* break:403\n")
    conf = write(os.path.join(world, "deploy.conf"), "DEPLOY_INI_ALLOW='route route-host'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOY_")}
    assert run_tool("uwsgi-ini-expand", ini, env=dict(env, DEPLOY_CONFIG=conf)).returncode == 0
    assert run_tool("uwsgi-ini-expand", ini, env=dict(env, DEPLOY_CONFIG=os.path.join(world, "none"))).returncode == 1
    from uwsgi_deploy.uwsgi_options import allowed_options
    for name, why in [("socket", "is set by the deployer"), ("set", "is uWSGI's configuration logic"),
                      ("if-env", "is uWSGI's configuration logic"), ("env", "belongs in environment.sh"),
                      ("include", "loads configuration"), ("emperor", "loads configuration"),
                      ("%xsocket", "has '%'")]:
        with pytest.raises(DeployError) as caught:
            allowed_options(["route", name])
        assert str(caught.value).startswith(f"DEPLOY_INI_ALLOW: option '{name}' {why}"), caught.value
        assert str(caught.value).endswith(": it cannot be allowed")
    assert {"forkptyrouter", "force-cwd"} <= allowed_options(["forkptyrouter", "force-cwd"])   # not "for" logic
    for logic in ("for", "for-glob", "endfor", "end-if", "if-not-env"):
        with pytest.raises(DeployError):
            allowed_options([logic])
    write(conf, "DEPLOY_INI_ALLOW=socket\n")
    result = run_tool("uwsgi-ini-expand", ini, env=dict(env, DEPLOY_CONFIG=conf))
    assert result.returncode == 1
    assert result.stderr.startswith("uwsgi-ini-expand: DEPLOY_INI_ALLOW: option 'socket' is set by the deployer")


def uwsgi_help():
    result = subprocess.run([UWSGI, "--plugins", "python3", "--help"], capture_output=True, text=True,
                            errors="replace", timeout=60)
    return dict(re.findall(r"^\s+(?:-\S\|)?--(\S+)\s+(.*)$", result.stdout, re.M))


def test_every_allowed_option_is_uwsgis_and_none_runs_or_opens_anything():
    from uwsgi_deploy.uwsgi_options import ALLOWED
    table = uwsgi_help()
    assert sorted(ALLOWED - set(table)) == []
    runs = re.compile(r"\b(run the specified|command|hook|daemon|bind|load config|include|fifo|chmod|chown|"
                      r"set environment|mule|spooler|cron)\b|on the specified (address|port|UNIX socket)", re.I)
    assert sorted(name for name in ALLOWED if runs.search(table[name])) == []
    assert runs.search(table["attach-daemon"]) and runs.search(table["exec-as-user"]) and runs.search(table["env"])


def test_docs_show_the_allow_list_the_code_applies():
    from uwsgi_deploy.uwsgi_options import allow_list_markdown
    with open(os.path.join(ROOT, "docs", "security.md"), encoding="utf-8") as stream:
        assert allow_list_markdown() in stream.read()


def test_the_example_apps_are_allowed():
    for example in ("share/example", "share/example-flask"):
        UwsgiIni.read(os.path.join(ROOT, example, "uwsgi.ini"))
