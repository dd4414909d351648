"""`make demo` as README tells it: the example app goes live with its
Procfile's worker running under the demo's Emperor (seen in /proc, and in
the jobs it does), and in the demo's clone "edit, commit, git push"
redeploys with no more setup: the new version's worker takes over, the old
one is gone. make demo-stop leaves no worker behind."""
import os
import re
import sqlite3
import subprocess
import urllib.request

import pytest

from conftest import ROOT, wait_until
from sandbox import scripts_running
from uwsgi_deploy.listeners import process_tree

pytestmark = pytest.mark.emperor


def workers_running(demo):
    """{pid: version directory} of the example's worker.py processes that
    descend from the demo's Emperor, as /proc shows them."""
    with open(os.path.join(demo, "pids")) as stream:
        emperor = [int(pid) for kind, pid in (line.split() for line in stream) if kind == "emperor"]
    home = os.path.join(demo, "h")
    return {pid: os.path.join(home, version)
            for pid, (script, version) in scripts_running(home + "/example-", process_tree(emperor)).items()
            if script == "worker.py"}


def job_done_by(demo, url):
    """POST /jobs through nginx; once the job is done, who did it (the queue's
    own record: 'example-<rev> pid N')."""
    with urllib.request.urlopen(url + "jobs", data=b"", timeout=10) as response:
        job = int(re.match(r"queued job (\d+);", response.read().decode()).group(1))

    def done():
        db = sqlite3.connect(os.path.join(demo, "h", "example.jobs.sqlite3"), timeout=10)
        try:
            row = db.execute("SELECT state, done_by FROM jobs WHERE id = ?", (job,)).fetchone()
        finally:
            db.close()
        return row[1] if row and row[0] == "done" else None
    return wait_until(done, 20, f"job {job} to be done")


def test_make_demo_runs_the_worker_then_edit_commit_push_redeploys(world):
    demo = os.path.join(world, "demo")
    user = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "GIT_"))}
    user["HOME"] = world    # a user with no git configuration of their own
    seen = set()
    try:
        started = subprocess.run(["make", "-s", "-C", ROOT, "demo", f"DEMO_DIR={demo}"],
                                 capture_output=True, text=True, timeout=300, env=user)
        assert started.returncode == 0, started.stdout + started.stderr
        url = [line.split(" is live at ")[1].split()[0] for line in started.stdout.splitlines()
               if " is live at " in line][0]
        assert "Hello from uwsgi-deploy's example app" in urllib.request.urlopen(url, timeout=10).read().decode()

        # what the demo printed is what runs: one worker, under the demo's Emperor, in the live version
        printed = re.search(r"^  processes worker +worker +1 running +pids (\d+) ", started.stdout, re.M)
        assert printed, started.stdout
        live = os.readlink(os.path.join(demo, "h", "run", "example.socket"))[:-len(".socket")]
        workers = workers_running(demo)
        seen |= set(workers)
        assert workers == {int(printed.group(1)): os.path.join(demo, "h", live)}, (workers, started.stdout)
        assert re.search(r"^ +cronreport +cron ", started.stdout, re.M), started.stdout
        [worker] = workers
        # it did the demo's job, and does the next one
        assert re.search(rf"^    worker of {live} pid {worker}: did job 1$", started.stdout, re.M), started.stdout
        assert job_done_by(demo, url) == f"{live} pid {worker}"

        source = os.path.join(demo, "example-src")
        hello = os.path.join(source, "hello.py")
        with open(hello) as stream:
            text = stream.read()
        with open(hello, "w") as stream:
            stream.write(text.replace("from uwsgi-deploy's example app", "from an edited example"))
        git = ["git", "-c", "user.name=me", "-c", "user.email=me@localhost"]
        subprocess.run(git + ["commit", "-q", "-am", "edit"], cwd=source, check=True, env=user)
        push = subprocess.run(["git", "push"], cwd=source, capture_output=True, text=True, timeout=300, env=user)
        assert push.returncode == 0, push.stderr
        assert " is live: serving " in push.stderr
        assert "Hello from an edited example" in urllib.request.urlopen(url, timeout=10).read().decode()

        # the new version's worker took over; the old one finished and is gone
        new = os.readlink(os.path.join(demo, "h", "run", "example.socket"))[:-len(".socket")]
        assert new != live

        def only_the_new_worker():
            workers = workers_running(demo)
            seen.update(workers)
            return len(workers) == 1 and list(workers.values()) == [os.path.join(demo, "h", new)] and workers
        [new_worker] = wait_until(only_the_new_worker, 40, "only the new version's worker")
        assert job_done_by(demo, url) == f"{new} pid {new_worker}"
    finally:
        subprocess.run(["make", "-s", "-C", ROOT, "demo-stop", f"DEMO_DIR={demo}"], capture_output=True,
                       timeout=120, env=user)
    alive = [pid for pid in seen if os.path.exists(f"/proc/{pid}")]
    assert alive == [], f"workers left after make demo-stop: {alive}"
