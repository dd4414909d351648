"""Background processes (a Procfile's worker, clock and cron job) across
deploys, with the real Emperor and nginx, DEFAULT settings, web load and
queue jobs of 4 s arriving all along (longer than every window: the watch
is 3 s, uWSGI's default mercy for a daemon 3 s), two workers.

One world for the whole file (a cron check needs a minute boundary): each
test deploys, breaks or restarts something, and every test ends with the
same checks of what the processes recorded themselves in SQLite: each job
done exactly once and none cut, never two clocks alive at once, each minute's
tick exactly once, and no failed web request."""
import os
import random
import re
import subprocess
import signal
import threading
import time

import pytest

import background_app as bg
from conftest import BIN, must_fail
from load import LoadLoop, SlowRequests
from sandbox import Sandbox, scripts_running
from uwsgi_deploy import proclayout, waiting
from uwsgi_deploy.supervisor import read_state

pytestmark = [pytest.mark.emperor, pytest.mark.load, pytest.mark.xdist_group("background")]   # one world, in order

# Jobs (and the cron job) of 4 s: longer than the watch (3 s) and than
# uWSGI's default mercy for daemons (3 s), so a job in hand spans every
# window of a deploy. Two workers (~/app.scale) keep up with one every 2.5 s.
JOB_SECONDS = 4
JOB_EVERY = 2.5
WORKERS = ["worker.py", "worker.py"]
# A clock takes 2 s to stop: longer than a new supervisor takes to start, so
# a new clock that did not wait for the old one to be gone would overlap it.
CLOCK_STOP_SECONDS = 2
SETTLE = 45         # seconds for a retired version's processes to be gone (its job in hand finishes)


class World:
    def __init__(self):
        self.box = Sandbox()
        self.box.environ.pop("DEPLOY_WATCH", None)    # the default watch
        self.box.start_emperor()
        self.box.deploy_init("app")
        self.box.start_nginx(["app"])
        self.queue = bg.Queue(bg.queue_path(self.box.root))
        self.versions = []
        self.started = time.time()
        self.stopping = threading.Event()
        self.producer = threading.Thread(target=self.produce, daemon=True)
        self.load = LoadLoop(self.box.url("/"), self.versions, clients=2, max_seconds=400)
        self.slow = SlowRequests(self.box.url("/slow?1"), interval=2.0, burst=2, max_requests=400, timeout=400)

    def produce(self):
        deadline = time.monotonic() + 400
        while not self.stopping.wait(JOB_EVERY) and time.monotonic() < deadline:
            self.queue.enqueue()

    def commit(self, version, env=""):
        files = dict(bg.files(version), **{"environment.sh": f"QUEUE_DB={self.queue.path}\n"
                                                              f"JOB_SECONDS={JOB_SECONDS}\nCRON_SECONDS={JOB_SECONDS}\n"
                                                              f"CLOCK_STOP_SECONDS={CLOCK_STOP_SECONDS}\n{env}"})
        self.versions.append(version)
        return self.box.commit_app(version, extra=files)

    def push(self, version, env=""):
        self.commit(version, env)
        return self.box.push()

    def live(self):
        return self.box.app("app").live_version()

    def processes(self):
        """{pid: (script, version dir)} of every worker, clock and cron job running."""
        return scripts_running(self.box.home + "/app-")

    def only_live_processes(self):
        live = self.live()
        running = self.processes()
        scripts = sorted(script for script, _ in running.values() if script != "cronjob.py")
        return all(where == live.name for _, where in running.values()) and scripts == ["clock.py"] + WORKERS

    def wait_settled(self, timeout=SETTLE):
        """Exactly the live version's worker and clock run, and the queue is empty."""
        waiting.wait_until(lambda: self.only_live_processes() and self.queue.pending() <= 3, timeout)
        assert self.only_live_processes(), (self.live(), self.processes())

    def cron_lines(self):
        """What the supervisors said of the cron job and of their own stops."""
        lines = []
        for name in sorted(os.listdir(self.box.settings.log_dir)):
            if name.endswith(".cronminute.log"):
                with open(os.path.join(self.box.settings.log_dir, name), errors="replace") as stream:
                    lines += [f"{name}: {line.strip()}" for line in stream if "[deploy-processes]" in line]
        return lines[-40:]

    def check_guarantees(self, web=True):
        jobs, done_once, duplicates, cut, _never = self.queue.job_report()
        assert duplicates == [] and cut == [], (duplicates, cut)
        assert done_once >= jobs - 3, f"{jobs} jobs, {done_once} done once"   # the last ones may be in hand
        assert self.queue.clock_overlaps() == []
        # every minute since the first version went live had its tick (this
        # one's too, once its first seconds are over)
        minutes = range(self.first_live_minute + 1, int((time.time() - 3) // 60) + 1)
        # the cron job records its tick itself once its Python is up, which on
        # a loaded machine can be seconds after the supervisor fired it
        waiting.wait_until(lambda: set(minutes) <= set(self.queue.ticks()), 30)
        ticks = self.queue.ticks()
        assert all(len(versions) == 1 for versions in ticks.values()), ticks
        missing = [m for m in minutes if m not in ticks]
        assert missing == [], (missing, ticks, self.cron_lines())
        if web:
            assert sum(self.load.errors.values()) == 0 and set(self.load.statuses) <= {200}, self.load.summary()
            assert sum(self.slow.errors.values()) == 0 and set(self.slow.statuses) <= {200}, self.slow.summary()
        return len(minutes)


@pytest.fixture(scope="module")
def world(stop_later):
    world = World()
    with open(os.path.join(world.box.home, "app.scale"), "w") as stream:   # what deploy-scale writes
        stream.write("worker=2\n")
    result = world.push("v1")
    assert result.returncode == 0, result.stderr
    world.first_live_minute = int(time.time() // 60)
    world.producer.start()
    with world.load, world.slow:
        yield world
        world.stopping.set()
    stop_later(world.box)


def test_deploys_under_load_run_every_job_once_with_one_clock(world):
    for n in range(2, 5):
        result = world.push(f"v{n}")
        assert result.returncode == 0, result.stderr
        assert re.search(r"processes: worker\.1 pid [0-9]+, worker\.2 pid [0-9]+, "
                         r"clock\.1 (pid [0-9]+|waits for the old clock to exit)",
                         result.stderr), result.stderr
        assert re.search(r"stopping app-[0-9a-f]{12}'s processes: SIGTERM, up to 30 s", result.stderr)
        live = world.live()
        state = read_state(world.box.settings, live.run_name)
        assert state and {p["name"] for p in state["processes"] if p["pid"]} >= {"worker"}, state
    world.wait_settled()
    world.check_guarantees()
    assert world.box.get("/").text == "v4"


def test_a_worker_crashing_at_start_is_refused_and_the_previous_processes_run_on(world):
    before = world.live()
    result = world.push("v-crash", env="WORKER_CRASHES=1\n")
    assert result.returncode != 0
    assert re.search(r"watch: worker\.[12] exited \(status 1\) after going live", result.stderr), result.stderr
    assert "worker: cannot start (WORKER_CRASHES is set)" in result.stderr
    assert f"switched back to {before.run_name}" in result.stderr
    assert world.live().run_name == before.run_name
    world.wait_settled()
    world.check_guarantees()


def test_a_bad_procfile_is_refused_in_one_line_before_anything_starts(world):
    before = world.live()
    world.commit("v-bad-procfile")
    world.box.commit({"Procfile": "worker: python3 worker.py\ncronx: 61 * * * * python3 cronjob.py\n"})
    result = world.box.push()
    must_fail(result, 1, re.compile(r"expand: .*/Procfile:2: cronx: minute field: a value is outside 0-59 *$"))
    assert world.live().run_name == before.run_name
    assert not [n for n in os.listdir(world.box.settings.run_dir) if n.endswith(proclayout.PROCS_INI_SUFFIX)]
    world.check_guarantees()


def test_rollback_and_config_redeploy_hand_over_the_same_way(world):
    result = world.box.tool("deploy-version", "--previous", "app")
    assert result.returncode == 0, result.stderr
    assert world.box.get("/").text == "v3"
    world.wait_settled()
    world.check_guarantees()
    result = subprocess.run([os.path.join(BIN, "deploy-config"), "app", "set", "SOMETHING"], input="x\n",
                            capture_output=True, text=True, env=world.box.environ, timeout=120)
    assert result.returncode == 0, result.stderr
    assert world.live().run == 1
    world.wait_settled()
    world.check_guarantees()


def scripts_of_live(world):
    live = world.live()
    return sorted(script for script, where in world.processes().values()
                  if where == live.name and script != "cronjob.py")


def test_scale_status_and_logs_follow_the_live_version(world):
    tool = world.box.tool
    result = tool("deploy-scale", "app", "worker=3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "worker=3\n"
    waiting.wait_until(lambda: scripts_of_live(world) == ["clock.py"] + WORKERS + ["worker.py"], 10)
    assert scripts_of_live(world) == ["clock.py"] + WORKERS + ["worker.py"]
    result = world.push("v-scaled")                       # the count holds across a deploy
    assert result.returncode == 0, result.stderr
    waiting.wait_until(lambda: scripts_of_live(world) == ["clock.py"] + WORKERS + ["worker.py"], 10)
    assert scripts_of_live(world) == ["clock.py"] + WORKERS + ["worker.py"]
    status = tool("deploy-status", "app").stdout
    assert re.search(r"processes worker +worker +3 running +pids [0-9]+ [0-9]+ [0-9]+ +up [0-9]+s [0-9]+s [0-9]+s +restarts 0",
                     status), status
    assert re.search(r"clock +clock +1 running", status) and "cronminute   cron" in status, status
    logs = tool("deploy-logs", "app", "--process", "worker", "-n", "50").stdout
    assert "worker.3 started" in logs
    logs = tool("deploy-logs", "app", "--process", "all", "-n", "50").stdout
    assert all(line.split(": ", 1)[0] in ("worker", "clock", "cronminute") for line in logs.splitlines()), logs
    assert "clock: " in logs and "worker: " in logs
    for bad, message in ((["clock=2"], r"^deploy-scale: clock: not a worker type of the live version's Procfile"),
                         (["worker=x"], r"^deploy-scale: 'worker=x': expected TYPE=COUNT")):
        result = tool("deploy-scale", "app", *bad)
        assert result.returncode == 1 and re.match(message, result.stderr) and len(result.stderr.splitlines()) == 1
    result = tool("deploy-logs", "app", "--process", "nope")
    assert result.returncode == 1 and "nope: not a process of" in result.stderr
    assert tool("deploy-scale", "app", "worker=2").returncode == 0
    world.wait_settled()
    world.check_guarantees()


def test_singletons_turned_off_on_this_host_stop_the_clock_and_cron_at_once(world):
    """A fleet's failover: DEPLOY_SINGLETONS=no in ~/deploy.conf takes the
    clock (and cron) off this host within seconds, with no redeploy; yes
    brings them back."""
    config = os.path.join(world.box.home, "deploy.conf")
    with open(config, "w") as stream:
        stream.write("DEPLOY_SINGLETONS=no\n")
    try:
        waiting.wait_until(lambda: scripts_of_live(world) == WORKERS, 10)
        assert scripts_of_live(world) == WORKERS
        assert "(clocks and cron run elsewhere" in world.box.tool("deploy-status", "app").stdout
    finally:
        os.unlink(config)
    waiting.wait_until(lambda: scripts_of_live(world) == ["clock.py"] + WORKERS, 10)
    assert scripts_of_live(world) == ["clock.py"] + WORKERS
    world.check_guarantees()


def test_a_fleet_commit_starts_the_processes_a_prepare_never_did(world):
    """The fleet's phases on this host: --prepare starts the candidate's web
    vassal only; its processes start at --commit, the old ones retire."""
    commit = world.commit("v-fleet")
    result = world.box.push(refspec="main:refs/fleet/candidate")
    assert result.returncode == 0, result.stderr
    result = world.box.tool("deploy-version", "--prepare", "app", commit)
    assert result.returncode == 0, result.stderr
    candidate = world.box.app("app").version(commit)
    assert os.path.exists(proclayout.waiting_ini(candidate)) and not os.path.exists(proclayout.vassal_ini(candidate))
    assert all(where != candidate.name for _, where in world.processes().values())
    result = world.box.tool("deploy-version", "--commit", "app", commit)
    assert result.returncode == 0, result.stderr
    assert world.live().name == candidate.name
    world.wait_settled()
    world.check_guarantees()


def test_a_deploy_killed_at_a_random_point_leaves_one_clock_and_no_orphan(world):
    point = random.choice(["switch", "watch", "retire", "link", "log"])
    world.commit(f"v-killed-at-{point}")
    push = world.box.paused_push(point)
    hook = push.reached()
    os.kill(hook, signal.SIGKILL)
    push.process.kill()
    push.finish(30)
    result = world.push("v6")
    assert result.returncode == 0, result.stderr
    world.wait_settled()
    world.check_guarantees()
    names = [n for n in os.listdir(world.box.settings.vassals_dir) if n.endswith(proclayout.PROCS_INI_SUFFIX)]
    assert names == [world.live().run_name + proclayout.PROCS_INI_SUFFIX]


def test_an_emperor_restart_brings_back_the_live_processes_only(world):
    live = world.live()
    before = read_state(world.box.settings, live.run_name)["pid"]
    emperor = next(p for kind, p in world.box.processes if kind == "emperor" and p.poll() is None)
    emperor.kill()
    emperor.wait(10)
    world.box.start_emperor()
    waiting.wait_until(lambda: (read_state(world.box.settings, live.run_name) or {}).get("pid") not in (None, before),
                       30)
    assert read_state(world.box.settings, live.run_name)["pid"] != before
    assert world.live().run_name == live.run_name
    world.wait_settled()
    # the file's tests together span a whole minute; run alone, this one waits for it
    waiting.wait_until(lambda: int((time.time() - 3) // 60) > world.first_live_minute, 130)
    minutes = world.check_guarantees(web=False)    # the web app was down with the Emperor
    assert minutes >= 1, "the file's tests did not cover a whole minute of cron ticks"
