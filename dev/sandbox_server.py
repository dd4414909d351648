"""A whole deploy server inside one directory: a deploy account's home, the
Emperor (bin/deploy-emperor, share/emperor.ini) and nginx (share/nginx-site.conf)
on a loopback port. The tests, `make demo` and the benchmark all use it, so
what they run is what ships; it is not installed (its nginx runs as root).
It needs lib/ on sys.path."""
import compileall
import os
import shutil
import signal
import socket
import subprocess
import time

from uwsgi_deploy import waiting
from uwsgi_deploy.init import render_nginx_site
from uwsgi_deploy.layout import App
from uwsgi_deploy.probe import free_loopback_port as free_port  # noqa: F401  (tests and bench use it)
from uwsgi_deploy.settings import load
from uwsgi_deploy.stats import read_stats
from timeline import TIMELINE_FORMAT

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.join(CHECKOUT, "bin")

NGINX_MAIN = """daemon off;
master_process on;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 1024; }}
http {{
    {access_log}
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include sites/*.conf;
}}
"""


# the test and fleet apps' ini: four workers
TEST_INI = """[uwsgi]
master = true
processes = 4
wsgi-file = app.py
"""


def write(path, text, mode=None):
    """Write text to path (its directories made), with mode if given; returns path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as stream:
        stream.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def compile_library():
    """Byte-compile the checkout's library, as `make install` does for the
    installed tools: a benchmark then times the hook's start-up as a server
    pays it, whatever PYTHONDONTWRITEBYTECODE says."""
    compileall.compile_dir(os.path.join(CHECKOUT, "lib"), quiet=1)


# how each kind of process is asked to stop
STOP_SIGNALS = {"emperor": signal.SIGINT, "nginx": signal.SIGQUIT}


def wait_until(predicate, timeout, what):
    """predicate()'s true value, once it has one; TimeoutError naming what
    was awaited after timeout seconds."""
    result = waiting.wait_until(predicate, timeout)
    if not result:
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
    return result


def port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Sandbox:
    def __init__(self, root, detach=False):
        """root: the sandbox directory (kept short: unix socket paths live in it).
        detach: started servers outlive this process (for `make demo`)."""
        self.root = root
        self.home = os.path.join(root, "h")
        os.makedirs(self.home, exist_ok=True)
        self.environ = {k: v for k, v in os.environ.items()
                        if not k.startswith(("DEPLOY_", "GIT_", "UWSGI_"))}
        self.environ["HOME"] = self.home
        self.settings = load(self.environ)
        self.detach = detach
        self.processes = []       # (kind, Popen)
        self.nginx_port = None

    def _start(self, kind, argv, **kwargs):
        if self.detach:   # outlive us without holding our stdout open
            with open(os.path.join(self.root, kind + ".out"), "ab") as out:
                kwargs.setdefault("stdout", out)
                kwargs.setdefault("stderr", out)
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                           **kwargs)
        else:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
        self.processes.append((kind, process))
        with open(os.path.join(self.root, "pids"), "a") as stream:
            stream.write(f"{kind} {process.pid}\n")
        return process

    def start_emperor(self, bin_dir=BIN_DIR, user=None):
        """bin_dir/deploy-emperor, as user (default: this process's)."""
        process = self._start("emperor", [os.path.join(bin_dir, "deploy-emperor"), "--", "--logto",
                                          os.path.join(self.settings.log_dir, "emperor.log")],
                              env=self.environ, user=user)

        def answering():
            if process.poll() is not None:
                raise RuntimeError(f"the Emperor exited with status {process.returncode}")
            return read_stats(self.settings.emperor_stats) is not None
        wait_until(answering, 15, "the Emperor")
        return process

    def start_nginx(self, apps, port=None, access_log=None):
        """nginx on a loopback port for apps; with access_log, a path where it
        logs every request as timeline.TIMELINE_FORMAT says (otherwise nothing)."""
        prefix = os.path.join(self.root, "nginx")
        for sub in ("tmp", "sites"):
            os.makedirs(os.path.join(prefix, sub), exist_ok=True)
        shutil.copy("/etc/nginx/uwsgi_params", prefix)
        self.nginx_port = port or free_port()
        for name in apps:
            with open(os.path.join(prefix, "sites", name + ".conf"), "w") as stream:
                stream.write(render_nginx_site(App(self.settings, name), f"127.0.0.1:{self.nginx_port}"))
        with open(os.path.join(prefix, "nginx.conf"), "w") as stream:
            logging = (f"log_format timeline '{TIMELINE_FORMAT}';\n    access_log {access_log} timeline;"
                       if access_log else "access_log off;")
            stream.write(NGINX_MAIN.format(prefix=prefix, access_log=logging))
        process = self._start("nginx", ["nginx", "-p", prefix, "-c", os.path.join(prefix, "nginx.conf")])

        def listening():
            if process.poll() is not None:
                with open(os.path.join(prefix, "error.log")) as log:
                    raise RuntimeError("nginx exited: " + log.read())
            return port_open(self.nginx_port)
        wait_until(listening, 15, "nginx")
        return process

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.nginx_port}{path}"

    def tool(self, name, *args, env=None, timeout=300, bin_dir=BIN_DIR):
        return subprocess.run([os.path.join(bin_dir, name), *args], capture_output=True, text=True,
                              env=dict(self.environ, **(env or {})), timeout=timeout)

    def stop(self, remove=True):
        stop_recorded(self.root)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


def stop_recorded(root, timeout=20):
    """Stop, by PID, every server a sandbox in root started (newest first)."""
    try:
        with open(os.path.join(root, "pids")) as stream:
            recorded = [line.split() for line in stream if line.strip()]
    except FileNotFoundError:
        return []
    stopped = []
    for kind, pid in reversed(recorded):
        try:
            os.kill(int(pid), STOP_SIGNALS.get(kind, signal.SIGTERM))
            stopped.append(int(pid))
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in stopped:
        if not waiting.wait_until(lambda: not _alive(pid), deadline - time.monotonic()):
            os.kill(pid, signal.SIGKILL)
    os.unlink(os.path.join(root, "pids"))
    return stopped


def _alive(pid):
    """True while pid runs; reaps it if it is our exited child."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie that is not our child still answers kill(0): look at its state
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
