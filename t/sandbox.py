"""A whole server in a temporary directory: the deploy account's home, a real
Emperor started from share/emperor.ini by bin/deploy-emperor, a real nginx
serving share/nginx-site.conf, bare repos made by bin/deploy-init, and a
developer's repository pushed with a real git client."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import requests

from conftest import BIN, free_port, wait_until, write
from uwsgi_deploy.emperor import read_stats
from uwsgi_deploy.init import render_nginx_site
from uwsgi_deploy.layout import App
from uwsgi_deploy.settings import load

NGINX_MAIN = """daemon off;
master_process on;
worker_processes 1;
user root;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    include sites/*.conf;
}}
"""

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

TEST_INI = """[uwsgi]
master = true
processes = 4
wsgi-file = app.py
"""


class Sandbox:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="ud-", dir="/tmp")
        self.home = os.path.join(self.root, "h")
        os.makedirs(self.home)
        self.environ = {k: v for k, v in os.environ.items()
                        if not k.startswith(("DEPLOY_", "GIT_", "UWSGI_"))}
        self.environ.update(HOME=self.home)
        self.settings = load(self.environ)
        self.processes = []
        self.nginx_port = None

    # -- servers -----------------------------------------------------------
    def start_emperor(self):
        process = subprocess.Popen([os.path.join(BIN, "deploy-emperor"), "--", "--logto",
                                    os.path.join(self.root, "emperor.log")],
                                   env=self.environ, stdin=subprocess.DEVNULL)
        self.processes.append((process, signal.SIGINT))
        self.emperor = process
        wait_until(lambda: read_stats(self.settings.emperor_stats) is not None, 15, "the Emperor")
        return process

    def start_nginx(self, apps):
        prefix = os.path.join(self.root, "nginx")
        for sub in ("tmp", "sites"):
            os.makedirs(os.path.join(prefix, sub), exist_ok=True)
        shutil.copy("/etc/nginx/uwsgi_params", prefix)
        self.nginx_port = free_port()
        for name in apps:
            write(os.path.join(prefix, "sites", name + ".conf"),
                  render_nginx_site(App(self.settings, name), f"127.0.0.1:{self.nginx_port}"))
        write(os.path.join(prefix, "nginx.conf"), NGINX_MAIN.format(root=prefix))
        process = subprocess.Popen(["nginx", "-p", prefix, "-c", os.path.join(prefix, "nginx.conf")],
                                   stdin=subprocess.DEVNULL)
        self.processes.append((process, signal.SIGQUIT))

        def listening():
            try:
                requests.get(self.url("/"), timeout=1)
                return True
            except requests.ConnectionError:
                assert process.poll() is None, open(os.path.join(prefix, "nginx-error.log")).read()
                return False
        wait_until(listening, 15, "nginx")

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.nginx_port}{path}"

    def get(self, path="/", **kwargs):
        return requests.get(self.url(path), timeout=kwargs.pop("timeout", 10), **kwargs)

    def stop(self):
        for process, sig in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(sig)
        for process, _ in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- tools and git -----------------------------------------------------
    def tool(self, name, *args, env=None, timeout=120):
        return subprocess.run([os.path.join(BIN, name), *args], capture_output=True, text=True,
                              env=dict(self.environ, **(env or {})), timeout=timeout)

    def deploy_init(self, app):
        result = self.tool("deploy-init", app)
        assert result.returncode == 0, result.stderr
        return result

    def app(self, name):
        return App(self.settings, name)

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
            mode = 0o755 if name.endswith("setup") else None
            write(path, text, mode)
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

    # -- what is on the server ---------------------------------------------
    def vassal_inis(self):
        return sorted(n for n in os.listdir(self.settings.vassals_dir) if not n.startswith("."))

    def run_files(self, suffix):
        return sorted(n for n in os.listdir(self.settings.run_dir) if n.endswith(suffix))

    def emperor_vassals(self):
        return sorted(v["id"] for v in (read_stats(self.settings.emperor_stats) or {}).get("vassals", []))

    def wait_emperor_vassals(self, expected, timeout=15):
        wait_until(lambda: self.emperor_vassals() == sorted(expected), timeout,
                   f"Emperor vassals {expected} (have {self.emperor_vassals()})")


def wait_file(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
