"""The test server: dev's Sandbox (Emperor, nginx, deploy account home) plus a
developer's repository pushed with a real git client; and, for the tests over
ssh, a throw-away deploy account with git-shell and an sshd on a loopback port."""
import os
import shlex
import signal
import subprocess
import tempfile
import threading

import requests

import sandbox_server as base
from sandbox_server import CHECKOUT as ROOT, TEST_INI, write
from uwsgi_deploy.stats import read_stats
from uwsgi_deploy.layout import App

# The app the tests deploy: reports its version and environment, can be slow.
TEST_APP = '''import json, os, time

VERSION = "{version}"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/ping":
        status = os.environ.get("PING_STATUS", "{ping_status}")
        start_response(status + " X", [("Content-Type", "text/plain")])
        return [b"pong"]
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or 3))
    if path == "/env":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(dict(os.environ)).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''

TEST_HOOKS = os.path.join(ROOT, "t", "hooks")   # the tests' pre-receive, with pauses



class Sandbox(base.Sandbox):
    def __init__(self):
        super().__init__(tempfile.mkdtemp(prefix="ud-", dir="/tmp"))
        # a short post-switch watch keeps every test on that code path; the
        # watch tests set their own
        self.environ["DEPLOY_WATCH"] = "0.3"

    def get(self, path="/", **kwargs):
        return requests.get(self.url(path), timeout=kwargs.pop("timeout", 10), **kwargs)

    def deploy_init(self, app):
        result = self.tool("deploy-init", app)
        assert result.returncode == 0, result.stderr
        return result

    def app(self, name):
        return App(self.settings, name)

    # -- the developer's side ----------------------------------------------
    def source_repo(self, name="src"):
        path = os.path.join(self.root, name)
        if not os.path.isdir(path):
            subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)
        return path

    def commit(self, files, repo=None, message="change"):
        """Write files (name -> text, or None to delete) and commit; returns the commit."""
        repo = repo or self.source_repo()
        for name, text in files.items():
            path = os.path.join(repo, name)
            if text is None:
                os.unlink(path)
                continue
            write(path, text, 0o755 if name.endswith("setup") else None)
        self.git(repo, "add", "-A")
        self.git(repo, "-c", "user.name=t", "-c", "user.email=t@t",
                 "commit", "-q", "--allow-empty", "-m", message)
        return self.git(repo, "rev-parse", "HEAD").stdout.strip()

    def commit_app(self, version, ping_status=200, extra=None, repo=None):
        files = {"app.py": TEST_APP.format(version=version, ping_status=ping_status),
                 "uwsgi.ini": TEST_INI}
        files.update(extra or {})
        return self.commit(files, repo, message=f"version {version}")

    def git(self, repo, *args, env=None, check=True):
        result = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                                env=dict(self.environ, **(env or {})), timeout=300)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def push(self, app="app", refspec="main", repo=None, extra_env=None, force=True):
        """git push to ~/APP.git (local transport: git runs the hook as in production)."""
        args = ["push"] + (["--force"] if force else []) + [os.path.join(self.home, app + ".git"), refspec]
        return self.git(repo or self.source_repo(), *args, env=extra_env, check=False)

    def push_argv(self, app="app", repo=None, hooks=None):
        """git push of main to ~/APP.git, forced. hooks: a directory whose
        pre-receive runs instead of the repository's own."""
        argv = ["git", "-C", repo or self.source_repo(), "push", "--force"]
        if hooks:   # receive-pack takes configuration on its command line too
            argv.append(f"--receive-pack=git -c core.hooksPath={shlex.quote(hooks)} receive-pack")
        return argv + [os.path.join(self.home, app + ".git"), "main"]

    def start_push(self, app="app", repo=None, env=None):
        """git push in the background: a RunningPush."""
        return RunningPush(self.push_argv(app, repo), dict(self.environ, **(env or {})))

    def paused_push(self, point, **kwargs):
        """A push whose deploy stops on reaching point (a stage, or a point
        Deploy's on_stage names), through the tests' own hook, t/hooks."""
        return PausedPush(self, point, **kwargs)

    # -- what is on the server ---------------------------------------------
    def vassal_inis(self):
        return sorted(n for n in os.listdir(self.settings.vassals_dir) if not n.startswith("."))

    def run_files(self, suffix):
        return sorted(n for n in os.listdir(self.settings.run_dir) if n.endswith(suffix))

    def emperor_vassals(self):
        return sorted(v["id"] for v in (read_stats(self.settings.emperor_stats) or {}).get("vassals", []))

    def wait_emperor_vassals(self, expected, timeout=60):
        base.wait_until(lambda: self.emperor_vassals() == sorted(expected), timeout,
                        f"Emperor vassals {expected} (have {self.emperor_vassals()})")


class RunningPush:
    """A git push running in the background; its output (stdout and stderr)
    is collected as it comes, so a test can wait for a line."""

    def __init__(self, argv, environ):
        self.process = subprocess.Popen(argv, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self):
        return "".join(self.lines)

    def wait_for_output(self, text, timeout=60):
        try:
            base.wait_until(lambda: text in self.output(), timeout,
                            f"{text!r} in the push's output:\n{self.output()}")
        except TimeoutError as error:
            # what the push was doing then: once, a push printed nothing for 60 s on a loaded machine
            raise TimeoutError(f"{error}\n(output reader {'running' if self.reader.is_alive() else 'ended'}); "
                               f"the push's processes then:\n{process_tree(self.process.pid)}") from None

    def running(self):
        return self.process.poll() is None

    def finish(self, timeout=120):
        """(returncode, output) once the push has ended."""
        self.process.wait(timeout)
        self.reader.join(timeout)
        return self.process.returncode, self.output()

    def result(self, timeout=120):
        """The ended push as a CompletedProcess (its output as stderr), for must_fail."""
        status, output = self.finish(timeout)
        return subprocess.CompletedProcess(self.process.args, status, "", output)

    def lose_client(self):
        """The pusher goes away (a dropped connection): the git client is
        killed, so the pipe that carries the hook's output to it breaks."""
        self.process.send_signal(signal.SIGKILL)
        self.finish(30)


class PausedPush(RunningPush):
    """A push through t/hooks/pre-receive whose deploy pauses at point."""

    def __init__(self, box, point, app="app", repo=None, env=None, timeout=None):
        """timeout: seconds after which an unreleased pause fails the deploy."""
        self.gate = os.path.join(box.root, f"gate-{point}")
        environ = dict(box.environ, **(env or {}), UD_TEST_PAUSE=f"{point}:{self.gate}")
        if timeout is not None:
            environ["UD_TEST_PAUSE_TIMEOUT"] = str(timeout)
        super().__init__(box.push_argv(app, repo, hooks=TEST_HOOKS), environ)

    def reached(self, timeout=60):
        """Wait until the deploy pauses; returns the deploy's pid."""
        wait_file(self.gate, timeout)
        with open(self.gate) as stream:
            return int(stream.read())

    def release(self):
        os.unlink(self.gate)

    def lose_client(self):
        """The pusher goes away, as a dropped ssh connection leaves it: the
        git client and the receive-pack that runs the hook are killed, so
        the pipe carrying the hook's output has no reader left. Call it while
        the deploy is paused."""
        hook = self.reached()
        receive_pack = parent_of(hook)
        for pid in (self.process.pid, receive_pack):
            os.kill(pid, signal.SIGKILL)
        self.finish(30)
        return hook


def app_beside_another(v1_files):
    """A Sandbox with the default settings (DEPLOY_WATCH unset), its Emperor,
    nginx for `app`, another app `other` live at o1, and `app` live at v1
    (the test app with v1_files)."""
    box = Sandbox()
    box.environ.pop("DEPLOY_WATCH", None)
    box.start_emperor()
    for app in ("app", "other"):
        box.deploy_init(app)
    box.start_nginx(["app"])
    other = box.source_repo("src-other")
    box.commit_app("o1", repo=other)
    assert box.push("other", repo=other).returncode == 0
    box.commit_app("v1", extra=v1_files)
    assert box.push().returncode == 0
    return box


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as stream:
        return int(stream.read().rsplit(") ", 1)[1].split()[1])


def process_tree(root):
    """root and its descendants as ps shows them (state, CPU, what each
    waits in), a line each, for a failure's message."""
    table = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,stat=,etime=,time=,wchan:24=,args="],
                           capture_output=True, text=True).stdout.splitlines()
    rows = {int(line.split()[0]): (int(line.split()[1]), line.strip()) for line in table}
    wanted, before = {root}, None
    while wanted != before:     # a child's pid may be lower than its parent's (pids wrap)
        before = set(wanted)
        wanted |= {pid for pid, (ppid, _) in rows.items() if ppid in wanted}
    return "\n".join(rows[pid][1][:200] for pid in sorted(wanted) if pid in rows) or f"{root} is gone"


def process_ended(pid):
    """pid has exited (gone, or a zombie nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(") ", 1)[1][0] in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return True


def scripts_running(prefix, pids=None):
    """{pid: (script, version directory)} of the Python scripts running (argv[1]
    a .py file) whose working directory starts with prefix (for example
    HOME/app-, the app's versions), as /proc shows them (of pids, when given;
    exited ones left out)."""
    found = {}
    for pid in pids if pids is not None else (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                argv = stream.read().split(b"\0")
        except OSError:
            continue
        if cwd.startswith(prefix) and len(argv) > 1 and argv[1].endswith(b".py") and not process_ended(pid):
            found[pid] = (argv[1].decode(), os.path.basename(cwd))
    return found


def wait_file(path, timeout=60):
    base.wait_until(lambda: os.path.exists(path), timeout, f"{path} to appear")
