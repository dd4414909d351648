"""Hostile input: each refused with a one-line reason naming what and where,
and the live version untouched."""
import os
import stat
import subprocess
import tracemalloc

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, UWSGI, must_fail, wait_until
from uwsgi_deploy import DeployError
from uwsgi_deploy.envfile import parse_env_text
from uwsgi_deploy.layout import MAX_SOCKET_PATH, hidden_temporary
from uwsgi_deploy.settings import load
from uwsgi_deploy.setup_script import run_setup
from uwsgi_deploy.uwsgi_ini import UwsgiIni, deploy_options, escape_value
from uwsgi_deploy.vassal import write_vassal_ini


@pytest.fixture
def live(server):
    """server with v1 live; returns its rev."""
    rev = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    return rev


def refused(server, live, result, stage, reason, serving="v1"):
    """The push was refused with `pre-receive: STAGE: ...REASON...` and the
    live version (`serving` what it says) still serves."""
    must_fail(result, 1, f"remote: pre-receive: {stage}: ")
    summary = [line for line in result.stderr.splitlines() if line.startswith("remote: pre-receive: ")]
    assert len(summary) == 1, result.stderr
    assert summary[0].startswith(f"remote: pre-receive: {stage}: ") and reason in summary[0], summary[0]
    assert server.get("/").text == serving
    assert server.vassal_inis() == [f"app-{live}.ini"]
    return summary[0]


@pytest.mark.emperor
def test_missing_uwsgi_ini(server, live):
    server.commit({"uwsgi.ini": None})
    refused(server, live, server.push(), "expand", "no uwsgi.ini in ")


@pytest.mark.emperor
def test_ini_syntax_error_names_file_and_line(server, live):
    server.commit({"uwsgi.ini": "[uwsgi]\nmaster = true\nthis is not an option\n"})
    line = refused(server, live, server.push(), "expand", "uwsgi.ini:3: cannot parse this line")
    assert "/app-" in line


@pytest.mark.emperor
def test_owned_option_names_option_and_line(server, live):
    server.commit({"uwsgi.ini": "[uwsgi]\nwsgi-file = app.py\nhttp-socket = :9090\n"})
    refused(server, live, server.push(), "expand", "uwsgi.ini:3: option 'http-socket' is set by the deployer")


@pytest.mark.emperor
def test_unparsable_env_file_names_file_and_line(server, live):
    server.commit({"environment.sh": "A=1\nB='unterminated\n"})
    refused(server, live, server.push(), "env", "environment.sh:2: cannot parse this line")


@pytest.mark.parametrize("name", ["my app", ".hidden", "appé", "foo.git", "app-0123456789ab", "run"])
def test_invalid_app_name_is_refused(sandbox, name):
    """Refused before anything runs: no Emperor needed to show it."""
    result = sandbox.tool("deploy-init", name)
    must_fail(result, 1, f"^deploy-init: invalid app name {name!r}")
    repo = os.path.join(sandbox.home, name + ".git")
    sandbox.git(sandbox.home, "init", "-q", "--bare", repo)
    os.symlink(os.path.join(os.path.dirname(__file__), "..", "bin", "pre-receive"),
               os.path.join(repo, "hooks", "pre-receive"))
    sandbox.commit_app("v1")
    before = sorted(os.listdir(sandbox.home))
    result = sandbox.git(sandbox.source_repo(), "push", repo, "main", check=False)
    must_fail(result, 1, f"remote: pre-receive: invalid app name {name!r}")
    assert sorted(os.listdir(sandbox.home)) == before      # no checkout, no vassal, no log


@pytest.mark.emperor
@pytest.mark.parametrize("link, target, what", [
    (".deploy", "/etc", ".deploy leads outside the checkout"),
    ("setup", "/bin/true", "setup leads outside the checkout"),
    ("uwsgi.ini", "/etc/nginx/uwsgi_params", "uwsgi.ini leads outside the checkout"),
    ("environment.sh", "/etc/hostname", "environment.sh leads outside the checkout"),
])
def test_links_out_of_the_checkout_are_refused(server, live, link, target, what):
    repo = server.source_repo()
    path = os.path.join(repo, link)
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)
    server.commit({})
    stage = {"uwsgi.ini": "expand", "setup": "setup", "environment.sh": "env"}.get(link, "checkout")
    refused(server, live, server.push(), stage, what)


@pytest.mark.emperor
def test_setup_without_x_bit_is_made_executable(server, live):
    server.commit_app("v2", extra={"setup": "#!/bin/sh\necho set up\n"})
    os.chmod(os.path.join(server.source_repo(), "setup"), 0o644)
    server.git(server.source_repo(), "add", "setup")
    server.commit({})
    result = server.push()
    assert result.returncode == 0, result.stderr
    assert "remote:        set up" in [line.rstrip() for line in result.stderr.splitlines()]   # under its stage
    assert server.get("/").text == "v2"


@pytest.mark.emperor
def test_hanging_setup_times_out(server, live):
    server.commit_app("v2", extra={"setup": "#!/bin/sh\necho starting\nexec sleep 600\n"})
    result = server.push(extra_env={"DEPLOY_SETUP_TIMEOUT": "1"})
    refused(server, live, result, "setup", "setup did not finish within 1 s (DEPLOY_SETUP_TIMEOUT)")
    assert "remote:  !       starting" in result.stderr


@pytest.mark.emperor
def test_setup_printing_50_mb_is_streamed(server, live):
    noisy = "#!/bin/sh\nhead -c 25000000 /dev/zero | tr '\\0' 'x'\necho\n" \
            "yes 'a line of setup output' | head -c 25000000\necho done\n"
    server.commit_app("v2", extra={"setup": noisy})
    result = server.push()
    assert result.returncode == 0, result.stderr[-500:]
    assert len(result.stderr) > 50_000_000
    assert server.get("/").text == "v2"


def test_run_setup_memory_stays_flat_for_50_mb(world):
    """The most memory run_setup holds at once while 50 MB of output (one
    line without an end) stream through it, measured by tracemalloc: a few
    64-KiB reads, not the output."""
    script = os.path.join(world, "setup")
    with open(script, "w") as stream:
        stream.write("#!/bin/sh\nhead -c 50000000 /dev/zero | tr '\\0' 'x'\n")
    os.chmod(script, 0o755)
    tracemalloc.start()
    try:
        with open(os.devnull, "wb") as sink:
            tail = run_setup(script, world, {"PATH": os.environ["PATH"]}, 60, lambda: sink)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert peak_mb < 2, f"run_setup held {peak_mb:.1f} MB at its peak"
    assert len(tail) == 1 and len(tail[0]) <= 4096     # the unended line is kept bounded


# -- any failure before the switch: one line, and the candidate is gone -------

@pytest.mark.emperor
def test_an_oserror_is_one_line_naming_stage_and_file(server, live):
    """~/log is a file: the probe stage cannot make the directory."""
    log_dir = server.settings.log_dir
    os.rename(log_dir, log_dir + ".moved")    # the live vassal keeps its open log
    with open(log_dir, "w"):
        pass
    server.commit_app("v2")
    line = refused(server, live, server.push(), "probe", f"{log_dir}: File exists")
    assert "Traceback" not in line


def candidate_gone(server, live, rev):
    """Only the live version's vassal, ini and sockets are left."""
    server.wait_emperor_vassals([f"app-{live}.ini"])
    assert server.vassal_inis() == [f"app-{live}.ini"]
    assert [n for n in server.run_files(".socket") if rev in n] == []


@pytest.mark.emperor
def test_an_oserror_while_the_candidate_runs_removes_it(server, live):
    """With DEPLOY_PROBE_VIA=http the candidate answers on a loopback port;
    then rewriting its ini fails (a directory where the temporary file goes)."""
    server.environ["DEPLOY_PROBE_VIA"] = "http"
    rev = server.commit_app("v2")[:12]
    push = server.paused_push("reconfigure")
    push.reached()
    blocker = hidden_temporary(server.app("app").version(rev).vassal_ini)
    os.mkdir(blocker)
    assert server.emperor_vassals() == sorted([f"app-{live}.ini", f"app-{rev}.ini"])
    push.release()
    status, output = push.finish()
    os.rmdir(blocker)
    refused(server, live, subprocess.CompletedProcess([], status, "", output), "reconfigure",
            f"{blocker}: Is a directory")
    assert f"app-{rev} not deployed; app-{live} is still live" in output
    candidate_gone(server, live, rev)


@pytest.mark.emperor
def test_any_exception_while_the_candidate_runs_removes_it(server, live):
    """Whatever goes wrong, a bug included: here a test pause at the switch
    that nobody releases raises in the pipeline, which fails loudly."""
    rev = server.commit_app("v2")[:12]
    push = server.paused_push("switch", timeout=1)
    status, output = push.finish()
    line = refused(server, live, subprocess.CompletedProcess([], status, "", output), "switch",
                   "PauseTimedOut: the test pause at switch was not released within 1 s")
    assert "Traceback" not in output and line.rstrip().endswith(")")   # where: (at FILE:LINE)
    candidate_gone(server, live, rev)


GARBLED_PING = '''def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")])
    return [b"this is not gzip"]
'''


@pytest.mark.emperor
def test_a_ping_answer_requests_cannot_read_is_a_failed_probe(server, live):
    """DEPLOY_PROBE_VIA=http: requests raises reading this /ping answer."""
    server.environ["DEPLOY_PROBE_VIA"] = "http"
    rev = server.commit({"app.py": GARBLED_PING})[:12]
    refused(server, live, server.push(extra_env={"DEPLOY_PROBE_TIMEOUT": "1"}), "probe",
            "no 200 within 1 s (last: bad answer (ContentDecodingError))")
    candidate_gone(server, live, rev)


def test_a_tool_turns_an_oserror_into_one_line(world):
    home = os.path.join(world, "home-is-a-file")
    open(home, "w").close()
    result = subprocess.run([os.path.join(ROOT, "bin", "deploy-init"), "x"], capture_output=True, text=True,
                            env=dict(os.environ, HOME=home), timeout=60)
    assert (result.returncode, result.stderr) == (1, f"deploy-init: {home}/vassals: Not a directory\n")


@pytest.mark.emperor
def test_ping_that_hangs_is_refused_within_timeout(server, live):
    hanging = "import time\ndef application(e, s):\n    time.sleep(600)\n"
    server.commit({"app.py": hanging})
    line = refused(server, live, server.push(extra_env={"DEPLOY_PROBE_TIMEOUT": "2"}), "probe", "no 200 within 2 s")
    assert "timeout" in line


@pytest.mark.emperor
def test_socket_path_limit_is_uwsgis_102_bytes(world):
    """uWSGI refuses a unix socket name over 102 bytes (the kernel would take
    107): measured on the real binary."""
    def binds(length):
        directory = os.path.join(world, "d" * (length - len(world) - len("/s.sock") - 1))
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "s.sock")
        assert len(path) == length
        process = subprocess.Popen([UWSGI, "--socket", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: os.path.exists(path) or process.poll() is not None, 20, "uwsgi to bind or die")
            return os.path.exists(path)
        finally:
            process.kill()
            output = process.communicate()[0].decode()
            assert os.path.exists(path) or "invalid socket name" in output, output
    assert (binds(MAX_SOCKET_PATH), binds(MAX_SOCKET_PATH + 1)) == (True, False)


@pytest.mark.emperor
def test_socket_path_over_102_bytes_is_refused_before_the_vassal_starts(sandbox):
    """With a run directory where app `a` gets a 102-byte socket and app `ab`
    a 103-byte one, `a` deploys and serves and `ab` is refused at expand,
    naming the path and the limit."""
    run_dir = os.path.join(sandbox.root, "r" * (MAX_SOCKET_PATH - 22 - len(sandbox.root) - 1))
    sandbox.environ["DEPLOY_RUN_DIR"] = run_dir
    sandbox.settings = load(sandbox.environ)
    sandbox.start_emperor()
    for app in ("a", "ab"):
        sandbox.deploy_init(app)
    sandbox.start_nginx(["a"])
    rev = sandbox.commit_app("v1")[:12]
    assert sandbox.push("a").returncode == 0
    assert len(sandbox.app("a").version(rev).socket) == MAX_SOCKET_PATH
    assert sandbox.get("/").text == "v1"
    result = sandbox.push("ab")
    summary = [line for line in result.stderr.splitlines() if line.startswith("remote: pre-receive: ")]
    must_fail(result, 1, "remote: pre-receive: expand: socket path ")
    assert len(summary) == 1, result.stderr
    assert summary[0].rstrip() == (f"remote: pre-receive: expand: socket path {run_dir}/ab-{rev}.socket is "
                                   f"103 bytes; uWSGI allows {MAX_SOCKET_PATH}: set a shorter DEPLOY_RUN_DIR")
    assert "died while starting" not in result.stderr
    assert sandbox.get("/").text == "v1" and sandbox.vassal_inis() == [f"a-{rev}.ini"]


# -- secrets -----------------------------------------------------------------

@pytest.mark.emperor
def test_secret_values_never_shown_even_on_failure(server, live):
    with open(server.settings.env_file, "w") as stream:
        stream.write("DB_PASSWORD=hunter2-s3cret\nBAD='x '\n")
    server.commit_app("v2")
    result = server.push()
    must_fail(result, 1, r"remote: pre-receive: .*BAD: trailing whitespace")
    with open(server.settings.env_file, "w") as stream:
        stream.write("DB_PASSWORD=hunter2-s3cret\n")
    server.commit_app("v3", ping_status=500)
    result = server.push(extra_env={"DEPLOY_PROBE_TIMEOUT": "1"})
    must_fail(result, 1, "remote: pre-receive: probe: ")
    assert "last 20 lines of the vassal log" in result.stderr
    for output in (result.stderr, open(server.settings.log_file).read()):
        assert "hunter2" not in output


def test_vassal_ini_is_0600_from_creation(world):
    old = os.umask(0)
    try:
        path = os.path.join(world, "app-0123456789ab.ini")
        write_vassal_ini(path, "[uwsgi]\nenv = SECRET=x\n")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        write_vassal_ini(path, "[uwsgi]\nenv = SECRET=y\n")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(old)


# text shaped like what users write, so that many draws are accepted; and
# anything at all, so that many are refused
ENV_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
LINE_TEXT = st.text(st.characters(blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
                                  blacklist_categories=("Cs",)), max_size=20)
ENV_LINES = st.one_of(
    st.builds("{}={}".format, ENV_NAMES, LINE_TEXT),
    st.builds("{}='{}'".format, ENV_NAMES, LINE_TEXT.map(lambda v: v.replace("'", ""))),
    st.builds("# {}".format, LINE_TEXT), st.just(""))
INI_LINES = st.one_of(
    st.builds("{} = {}".format, st.sampled_from(["master", "processes", "threads", "wsgi-file", "module",
                                                 "harakiri", "env", "socket", "http-socket", "plugin"]),
              LINE_TEXT),
    st.builds("; {}".format, LINE_TEXT), st.sampled_from(["[uwsgi]", "[other]", ""]))
ENV_TEXTS = st.one_of(st.text(max_size=200), st.lists(ENV_LINES, max_size=6).map("\n".join))
INI_TEXTS = st.one_of(st.text(max_size=200), st.lists(INI_LINES, max_size=6).map(lambda lines: "\n".join(
    ["[uwsgi]", *lines])))


def test_any_env_and_ini_text_is_expanded_or_refused():
    """Arbitrary text never crashes the expander: a one-line DeployError
    naming the file, or an ini that keeps the user's text and carries
    every variable. Both outcomes happen, many times each."""
    outcomes = {"accepted": 0, "refused": 0}

    @settings(max_examples=300, deadline=None)
    @given(env_text=ENV_TEXTS, ini_text=INI_TEXTS)
    def expand(env_text, ini_text):
        try:
            entries = parse_env_text(env_text, "env", lookup=lambda name: None, warn=lambda m: None)
            ini = UwsgiIni(ini_text, "uwsgi.ini")
            ini.add_options(deploy_options(entries, "/srv/app"))
        except DeployError as error:
            assert "\n" not in str(error) and str(error).startswith(("env:", "uwsgi.ini:")), str(error)
            outcomes["refused"] += 1
            return
        text = ini.text()
        assert text.startswith(ini_text)
        deployers = text[len(ini_text):].split("\n[uwsgi]\n; added by uwsgi-deploy\n")[1].splitlines()
        assert deployers[2] == "chdir = /srv/app"
        carried = [line for line in deployers if line.startswith("env = ")]
        expected = [f"env = {entry.name}={escape_value(entry.value, entry.name)}" for entry in entries]
        assert carried[-len(expected):] == expected if expected else carried == ["env = LC_CTYPE=C.UTF-8"]
        outcomes["accepted"] += 1

    expand()
    assert outcomes["accepted"] >= 30 and outcomes["refused"] >= 30, outcomes


# -- security hardening (issue 13) --------------------------------------------

DAEMONIZING_SETUP = """#!/bin/sh
sleep 300 &
echo $! > background.pid
# a daemon: its own session, its parent gone at once (a double fork)
setsid sh -c 'sleep 300 & echo $! > daemon.pid' < /dev/null > /dev/null 2>&1 &
while [ ! -s daemon.pid ]; do sleep 0.01; done
echo set up
"""


@pytest.mark.emperor
def test_setup_leaves_no_process_running(server, live):
    """A `cmd &` and a setsid, double-forked daemon of a setup that exits 0
    are gone when the setup stage ends."""
    rev = server.commit_app("v2", extra={"setup": DAEMONIZING_SETUP})[:12]
    result = server.push()
    assert result.returncode == 0, result.stderr
    workdir = server.app("app").version(rev).workdir
    for name in ("background.pid", "daemon.pid"):
        pid = int(open(os.path.join(workdir, name)).read())
        assert not os.path.exists(f"/proc/{pid}"), f"{name}: {pid} still runs"
    assert server.get("/").text == "v2"


@pytest.mark.emperor
@pytest.mark.parametrize("text, line, reason", [
    ("A=1\nsk_live_51HxyzSECRETxyz\n", 2, "no '=' on this line"),
    ("KEY=-----BEGIN\nMIIEvQIBADANBgkqh+kiG9w0SECRET/AQEFAASC=xyz\n", 2, "invalid variable name"),
])
def test_malformed_env_line_is_refused_without_showing_it(server, live, text, line, reason):
    server.commit({"environment.sh": text})
    result = server.push()
    refused(server, live, result, "env", f"environment.sh:{line}: {reason}")
    assert "SECRET" not in result.stderr


@pytest.mark.emperor
def test_uwsgi_variable_in_an_env_file_is_refused(server, live):
    with open(server.settings.env_file, "w") as stream:
        stream.write("A=1\nUWSGI_HTTP11_SOCKET=0.0.0.0:9090\n")
    os.chmod(server.settings.env_file, 0o600)
    server.commit_app("v2")
    refused(server, live, server.push(), "env",
            f"{server.settings.env_file}:2: UWSGI_HTTP11_SOCKET: names starting with UWSGI_ become uWSGI options")


@pytest.mark.emperor
def test_listener_alias_in_uwsgi_ini_is_refused(server, live):
    server.commit({"uwsgi.ini": "[uwsgi]\nmaster = true\nwsgi-file = app.py\n; \x0c[other]\n"
                                "http11-socket = 0.0.0.0:9090\n"})
    refused(server, live, server.push(), "expand", "uwsgi.ini:5: option 'http11-socket' opens a way in")


@pytest.mark.emperor
def test_server_side_env_file_others_can_read_is_warned_about_and_writable_refused(server, live):
    env_file = server.settings.env_file
    with open(env_file, "w") as stream:
        stream.write("DB_PASSWORD=hunter2\n")
    os.chmod(env_file, 0o644)
    server.commit_app("v2")
    result = server.push()
    assert result.returncode == 0, result.stderr
    assert f"remote:  !     {env_file} is readable by other users (mode 644): chmod 600 {env_file}" in result.stderr
    os.chmod(env_file, 0o666)
    server.commit_app("v3")
    line = refused(server, server.app("app").live_version().rev, server.push(), "env",
                   f"{env_file}: writable by other users", serving="v2")
    assert "hunter2" not in line


@pytest.mark.emperor
def test_what_a_deploy_writes_is_private_to_the_account(server, live):
    """Checkout, setup's files, deploy.log, git's objects, the layout, and the
    sockets and logs of the Emperor's vassals: nothing for other users,
    although the pusher's umask lets everyone read."""
    old = os.umask(0o022)
    try:
        rev = server.commit_app("v2", extra={"setup": "#!/bin/sh\necho secret > built.txt\n"})[:12]
        assert server.push().returncode == 0
    finally:
        os.umask(old)
    version = server.app("app").version(rev)
    repo = server.app("app").repo
    objects = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(repo, "objects")) for f in files]
    paths = [version.workdir, os.path.join(version.workdir, "app.py"), os.path.join(version.workdir, "built.txt"),
             server.settings.log_file, server.settings.vassals_dir, server.settings.run_dir,
             server.settings.log_dir, version.socket, version.log, version.vassal_ini, *objects]
    assert len(objects) > 3
    public = [(path, oct(os.stat(path).st_mode & 0o777)) for path in paths if os.stat(path).st_mode & 0o007]
    assert public == []


@pytest.mark.emperor
def test_uwsgi_ini_that_setup_left_as_a_fifo_is_refused_at_once(server, live):
    setup = "#!/bin/sh\nrm uwsgi.ini\nmkfifo uwsgi.ini\n"
    server.commit_app("v2", extra={"setup": setup})
    result = server.push()   # a deploy that opened the FIFO would hang here, holding the lock
    refused(server, live, result, "expand", "uwsgi.ini: not a regular file (a FIFO)")


@pytest.mark.emperor
def test_push_over_the_size_limit_is_refused_by_git(server, live):
    result = server.tool("deploy-init", "app", env={"DEPLOY_PUSH_MAX_MB": "1"})
    assert result.returncode == 0, result.stderr
    server.commit({"blob.bin": os.urandom(3 * 1024 * 1024).hex()[:3 * 1024 * 1024]})
    result = server.push()
    must_fail(result, 1, "pack exceeds maximum allowed size")
    assert server.get("/").text == "v1" and server.vassal_inis() == [f"app-{live}.ini"]


@pytest.mark.emperor
def test_malformed_git_object_is_refused_by_git(server, live):
    """receive.fsckObjects: a commit whose author has no email never gets in."""
    repo = server.source_repo()
    tree = server.git(repo, "rev-parse", "HEAD^{tree}").stdout.strip()
    parent = server.git(repo, "rev-parse", "HEAD").stdout.strip()
    bad = f"tree {tree}\nparent {parent}\nauthor nobody 1700000000 +0000\ncommitter c <c@c> 1700000000 +0000\n\nx\n"
    commit = subprocess.run(["git", "-C", repo, "hash-object", "-t", "commit", "-w", "--literally", "--stdin"],
                            input=bad, capture_output=True, text=True, check=True).stdout.strip()
    server.git(repo, "update-ref", "refs/heads/main", commit)
    result = server.push()
    must_fail(result, 1, "fsck")
    assert server.get("/").text == "v1" and server.vassal_inis() == [f"app-{live}.ini"]


NOISY_APP = '''import sys


def application(environ, start_response):
    for _ in range(100):   # 100 KB of log, in lines a uWSGI log keeps whole
        sys.stderr.write("x" * 1000 + "\\n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"noisy"]
'''


@pytest.mark.emperor
def test_vassal_log_is_capped_and_rotated(server, live):
    """A log over DEPLOY_VASSAL_LOG_MAX_MB becomes the one old copy within
    seconds, the app logging on into the emptied log, every request served
    (uWSGI's own log-maxsize would fail requests that log this much)."""
    rev = server.commit({"app.py": NOISY_APP})[:12]
    assert server.push(extra_env={"DEPLOY_VASSAL_LOG_MAX_MB": "1"}).returncode == 0
    version = server.app("app").version(rev)
    for _ in range(30):   # 3 MB of log
        assert server.get("/").text == "noisy"
    # the watcher may find the log over the cap more than once while the 3 MB
    # are written; within seconds of the last write it is under the cap again
    wait_until(lambda: os.path.exists(version.log_backup) and os.path.getsize(version.log) < 1024 * 1024,
               20, "the log to be rotated and under the cap")
    assert os.path.getsize(version.log_backup) > 1024 * 1024   # the copy: what was over the cap
    before = os.path.getsize(version.log)
    assert server.get("/").text == "noisy"
    wait_until(lambda: os.path.getsize(version.log) >= before + 100_000, 10, "the app to log on")
    assert os.stat(version.log).st_blocks * 512 < 1024 * 1024   # appended at the new end, no hole


def test_recovery_removes_exactly_this_apps_temporary_files(world):
    """A deploy of `foo` removes what a deploy of `foo` leaves (~/foo.PID.new,
    ~/run/foo.socket.PID.new, .foo-<rev>.tmp-PID) and nothing else."""
    from uwsgi_deploy.layout import App
    from uwsgi_deploy.recovery import sweep_app
    settings = load({"HOME": world})
    os.makedirs(settings.run_dir)
    foo = App(settings, "foo")
    version = foo.version("0123456789ab")
    ours = [os.path.join(world, "foo.123.new"), os.path.join(settings.run_dir, "foo.socket.123.new"),
            version.checkout_archive(123)]
    others = [os.path.join(world, "foo.bar.123.new"), os.path.join(world, "foo.x.new"),
              os.path.join(settings.run_dir, "foo.socket.x.new"), os.path.join(world, "foo-bar.123.new"),
              os.path.join(world, ".foo-0123456789ab.tmp-x")]
    for path in ours + others:
        os.symlink("nowhere", path)
    sweep_app(settings, foo, emperor_running=False)
    assert [os.path.lexists(p) for p in ours] == [False] * len(ours)
    assert [os.path.lexists(p) for p in others] == [True] * len(others)


def test_make_demo_refuses_a_directory_another_user_prepared(world):
    """Another user creates the demo directory first, with a `pids` file
    naming a process of ours: make demo-stop signals nothing."""
    victim = subprocess.Popen(["sleep", "60"])
    demo = os.path.join(world, "demo")
    os.makedirs(demo)
    with open(os.path.join(demo, "pids"), "w") as stream:
        stream.write(f"nginx {victim.pid}\n")
    os.chown(demo, 65534, 65534)
    try:
        for target in ("demo-stop", "demo"):
            result = subprocess.run(["make", "-s", "-C", ROOT, target, f"DEMO_DIR={demo}"],
                                    capture_output=True, text=True, timeout=60)
            must_fail(result, 2, f"demo: {demo} is not a private directory of yours (owner uid 65534")
        assert victim.poll() is None and os.listdir(demo) == ["pids"]
    finally:
        victim.kill()
        victim.wait()
