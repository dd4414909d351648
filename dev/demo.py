"""make demo: the example app deployed by a real `git push` into a sandbox
(an Emperor and nginx on a free loopback port), then a job queued for its
Procfile's worker, which does it; make demo-stop ends it.

    PYTHONPATH=lib:dev python3 dev/demo.py start|stop [DIR]     (default DIR /tmp/uwsgi-deploy-demo)

DIR is private to whoever runs the demo (created 0700; an existing one must
be a directory of theirs that nobody else can write): the demo runs what is
in it and stop signals the PIDs recorded there, so a DIR another user
prepared in /tmp is refused.
"""
import itertools
import os
import shutil
import stat
import subprocess
import sys
import urllib.request

from sandbox_server import CHECKOUT, Sandbox, stop_recorded, wait_until
from uwsgi_deploy import proclayout
from uwsgi_deploy.layout import App
from uwsgi_deploy.paths import share

DEFAULT_DIR = "/tmp/uwsgi-deploy-demo"
JOB_TIMEOUT = 20   # seconds the worker gets to do the demo's job


def step(text):
    print(f"demo: {text}", flush=True)


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost", *args],
                   cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def private_root(root):
    """Make root (0700), or make sure the existing one is ours alone."""
    try:
        os.mkdir(root, 0o700)
        return False
    except FileExistsError:
        pass
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        sys.exit(f"demo: {root} is not a private directory of yours (owner uid {info.st_uid}, "
                 f"mode {stat.filemode(info.st_mode)}): remove it, or choose another with DEMO_DIR=...")
    return True


def start(root):
    if private_root(root) and stop_recorded(root):
        step("stopped the previous demo")
    shutil.rmtree(root, ignore_errors=True)
    os.mkdir(root, 0o700)
    box = Sandbox(root, detach=True)
    # installed as for a real deploy account, so the hook runs with the
    # toolkit's own libraries whoever pushes
    step(f"installing the tools into {box.home}")
    subprocess.run(["make", "-s", "-C", CHECKOUT, "install", f"PREFIX={box.home}"], check=True)
    bin_dir = os.path.join(box.home, "bin")
    step("starting the Emperor")
    box.start_emperor(bin_dir=bin_dir)
    result = box.tool("deploy-init", "example", bin_dir=bin_dir)
    if result.returncode != 0:
        sys.exit(result.stderr)
    step("starting nginx")
    box.start_nginx(["example"])
    source = os.path.join(root, "example-src")
    shutil.copytree(share("example"), source)
    git("init", "-q", "-b", "main", cwd=source)
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "The example app", cwd=source)
    # the remote README tells users to add, tracked, so a bare `git push` redeploys
    git("remote", "add", "deploy", os.path.join(box.home, "example.git"), cwd=source)
    step(f"git push --set-upstream deploy main   (deploy = {box.home}/example.git)")
    push = subprocess.run(["git", "push", "--set-upstream", "deploy", "main"],
                          cwd=source, env=box.environ)
    if push.returncode != 0:
        sys.exit("demo: the push was refused (see above); make demo-stop cleans up")
    with urllib.request.urlopen(box.url("/"), timeout=10) as response:
        page = response.read().decode()
    step(f"the example app is live at {box.url('/')} and says:\n\n    {page}")
    show_background_work(box, bin_dir)
    step(f"to redeploy: cd {source}; edit hello.py; git commit -am 'say hi'; git push")
    step("`make demo-stop` ends it")


def show_background_work(box, bin_dir):
    """Queue a job, wait until the Procfile's worker did it, and print what
    runs (deploy-status) and the worker's log (deploy-logs --process)."""
    with urllib.request.urlopen(box.url("/jobs"), data=b"", timeout=10) as response:
        queued = response.read().decode().strip()
    job = queued.split()[2].rstrip(";")   # "queued job N; ..."
    run = App(box.settings, "example").live_version().run_name
    log = proclayout.type_log(box.settings, run, "worker")

    def done():
        try:
            with open(log, encoding="utf-8", errors="replace") as stream:
                return f": did job {job}\n" in stream.read()
        except FileNotFoundError:
            return False
    try:
        wait_until(done, JOB_TIMEOUT, f"the worker to do job {job}")
    except TimeoutError as error:
        sys.exit(f"demo: {error}; its log: {log}")
    status = box.tool("deploy-status", "example", bin_dir=bin_dir).stdout.splitlines()
    start = [i for i, line in enumerate(status) if line.startswith("  processes ")]
    if not start:
        sys.exit("demo: deploy-status shows no processes:\n" + "\n".join(status))
    lines = status[start[0]:start[0] + 1] + list(itertools.takewhile(lambda line: line.startswith(" " * 12),
                                                                     status[start[0] + 1:]))
    step("its Procfile runs a worker and a cron job beside the web app (deploy-status example):\n\n"
         + "\n".join(lines) + "\n")
    tail = box.tool("deploy-logs", "example", "--process", "worker", "-n", "3", bin_dir=bin_dir).stdout
    step(f"POST /jobs queued job {job}, and the worker did it (deploy-logs example --process worker):\n\n"
         + "".join("    " + line for line in tail.splitlines(keepends=True)))
    step(f"queue another job: curl -d '' {box.url('/jobs')}")
    step(f"then see every process's log: HOME={box.home} {bin_dir}/deploy-logs example --process all")


def stop(root):
    if not os.path.lexists(root):
        step("no demo was running")
        return
    private_root(root)
    stopped = stop_recorded(root)
    shutil.rmtree(root, ignore_errors=True)
    step(f"stopped {len(stopped)} processes, removed {root}" if stopped else "no demo was running")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    {"start": start, "stop": stop}[sys.argv[1]](sys.argv[2] if len(sys.argv) > 2 else DEFAULT_DIR)
