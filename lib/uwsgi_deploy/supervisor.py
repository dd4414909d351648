"""The supervisor of one run's background processes (bin/deploy-processes).

The Emperor runs it as the only daemon of the run's processes vassal
(background.py), so it starts when that vassal is written (the version goes
live), comes back with the Emperor, and is told to stop (SIGTERM, repeated
every second by uWSGI) when the vassal is removed. It:
- keeps each worker type's count running (~/APP.scale, default 1), restarting
  one that exits after a backoff (0.5 s, doubling, at most 30 s);
- runs each clock while its run is the live one (the live socket points at
  it) and this host runs singletons. A clock starts only once it holds
  ~/run/APP.CLOCK.lock, which the clock process itself keeps open: a second
  clock cannot start while the first is alive, whoever started it;
- fires each cron job once per minute per app while its run is live: the
  minute is claimed in ~/run/APP.cron.ticks under ~/run/APP.cron.lock;
- records what runs in ~/run/RUN.procs.state for the watch and deploy-status;
- on stop: SIGTERM to each worker and clock (their process groups), cron jobs
  are left to finish, and whatever still runs after the stop timeout gets
  SIGKILL. Its children get SIGTERM should it die (PR_SET_PDEATHSIG).
Each process runs in the version's deploy directory, with the vassal's
environment (the app's variables), the version's .venv first on PATH, its
output appended to ~/log/RUN.TYPE.log."""
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

from . import proclayout
from .settings import _read_config as read_config
from .procfile import CLOCK, CRON, WORKER, background, minute_of, procfile_path, read

LOOK_INTERVAL = 0.1
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
STEADY_AFTER = 60.0     # seconds a process must run for its backoff to start over
# A minute's tick is fired late (a handover took the minute's first seconds)
# only for a job that ticked before; a job never fired waits for its next minute.
FIRST_TICK_LATENESS = 5.0
CONFIG_INTERVAL = 2.0   # seconds between two reads of DEPLOY_SINGLETONS from the config file
HANDOVER_WAIT = 10.0    # seconds a clock that lost the live run waits for the new run's supervisor
SHELL_SPECIALS = set("|&;<>()$`\\\"'*?[#~=%\n")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


def _die_with_parent():
    """In the child, before exec: SIGTERM when the supervisor dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except Exception:
        pass


def shell_argv(command):
    """sh -c, with exec when the command is one simple command, so the pid
    is the process itself."""
    simple = not (set(command) & SHELL_SPECIALS)
    return ["/bin/sh", "-c", ("exec " + command) if simple else command]


def read_scale(path):
    """{type: count} from a scale file (NAME=COUNT lines); {} if none."""
    counts = {}
    try:
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                name, _, count = line.strip().partition("=")
                if name and count.isdigit():
                    counts[name] = int(count)
    except OSError:
        pass
    return counts


@dataclass
class Slot:
    """One instance of a worker or clock type: what runs in it and its history."""
    name: str
    kind: str
    index: int
    command: str
    popen: object = None
    started: float = None       # wall time
    restarts: int = 0
    exits: int = 0              # exits the supervisor did not ask for
    last_exit: object = None
    failures_in_row: int = 0
    not_before: float = 0.0     # monotonic: backoff
    stopping_since: float = None
    waiting_for_lock: bool = False

    @property
    def label(self):
        return f"{self.name}.{self.index}"


@dataclass
class CronRun:
    name: str
    popen: object
    started: float
    minute: int


@dataclass
class Supervisor:
    app: str
    run: str
    deploy_dir: str
    run_dir: str
    log_dir: str
    home: str
    vassals_dir: str
    stop_timeout: float
    singletons: bool
    config: str = None        # the config file DEPLOY_SINGLETONS comes from, or None (fixed)
    slots: dict = field(default_factory=dict)
    cron_runs: list = field(default_factory=list)
    stop_requested: bool = False

    def __post_init__(self):
        self.paths = self   # run_dir, log_dir, home: what proclayout needs of settings
        self.entries = background(read(procfile_path(self.deploy_dir)))
        self.crons = [e for e in self.entries if e.kind == CRON]
        self.scale_path = proclayout.scale_file(self, self.app)
        self.scale_mtime = None
        self.counts = {}
        self.checked_minute = None
        self.state_written = None
        self.log_files = {}
        self.started = time.time()
        self.lost_at = None
        self.config_read_at = time.monotonic()
        self.config_error = None

    # -- the loop ------------------------------------------------------------
    def main(self):
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.request_stop)
        self.say(None, f"supervising {', '.join(e.name for e in self.entries) or 'nothing'} "
                       f"for {self.run} (pid {os.getpid()})")
        while not self.stop_requested:
            self.step()
            time.sleep(LOOK_INTERVAL)
        self.stop_all()
        return 0

    def request_stop(self, signum, frame):
        self.stop_requested = True

    def step(self):
        self.reap()
        self.read_counts()
        owner = self.owns_singletons()
        if owner:
            self.lost_at = None
        elif self.lost_at is None:
            self.lost_at = time.monotonic()
        keep_clock = owner or not self.successor_ready()
        for entry in self.entries:
            if entry.kind == WORKER:
                self.keep(entry, self.counts.get(entry.name, 1))
            elif entry.kind == CLOCK:
                self.keep(entry, 1 if keep_clock else 0, start=owner)
        if owner:
            self.fire_cron()
        else:
            self.checked_minute = None
        self.write_state(owner)

    def live_run(self):
        """The run the live socket points at (APP-<rev>[.N]), or None."""
        try:
            target = os.path.basename(os.readlink(os.path.join(self.run_dir, self.app + ".socket")))
        except OSError:
            return None
        return target[:-len(".socket")] if target.endswith(".socket") else None

    def owns_singletons(self):
        """This run serves (the live socket points at it) and this host runs
        the clock and cron."""
        return self.runs_singletons() and self.live_run() == self.run

    def runs_singletons(self):
        """DEPLOY_SINGLETONS: as the deploy resolved it or, when it came from
        the config file (or its default), as that file says now, read every
        CONFIG_INTERVAL: a failover needs no redeploy."""
        if self.config is None:
            return self.singletons
        if time.monotonic() >= self.config_read_at + CONFIG_INTERVAL:
            self.config_read_at = time.monotonic()
            try:
                values = read_config(self.config)
            except Exception as error:   # a bad file: keep the last value, say why once
                if str(error) != self.config_error:
                    self.config_error = str(error)
                    self.say(None, f"{self.config}: {error}; DEPLOY_SINGLETONS stays "
                                   f"{'yes' if self.singletons else 'no'}")
                return self.singletons
            self.config_error = None
            now = values.get("DEPLOY_SINGLETONS", "yes") != "no"
            if now != self.singletons:
                self.say(None, f"DEPLOY_SINGLETONS is now {'yes' if now else 'no'} in {self.config}")
                self.singletons = now
        return self.singletons

    def successor_ready(self):
        """A clock that lost the live run keeps ticking until the live run's
        supervisor is up to start its own (at most HANDOVER_WAIT): the gap is
        then the old clock's exit, not the new supervisor's start-up. A live
        run with no processes vassal takes nothing over."""
        live = self.live_run()
        if live is None or time.monotonic() - self.lost_at > HANDOVER_WAIT:
            return True
        if not os.path.exists(os.path.join(self.vassals_dir, live + proclayout.PROCS_INI_SUFFIX)):
            return True
        return os.path.exists(proclayout.state_file(self, live))

    def read_counts(self):
        try:
            mtime = os.stat(self.scale_path).st_mtime_ns
        except OSError:
            mtime = None
        if mtime != self.scale_mtime:
            self.scale_mtime, self.counts = mtime, read_scale(self.scale_path)

    # -- workers and clocks --------------------------------------------------
    def keep(self, entry, count, start=True):
        """count instances of entry running: start missing ones (after their
        backoff; not when start is false), stop extra ones."""
        for index in range(1, max(count, self.highest_index(entry.name)) + 1):
            slot = self.slots.setdefault((entry.name, index), Slot(entry.name, entry.kind, index, entry.command))
            running = slot.popen is not None
            if index > count:
                if running and slot.stopping_since is None:
                    self.terminate(slot, "scaled down" if entry.kind == WORKER else "its run is no longer live")
                continue
            if not running and start and time.monotonic() >= slot.not_before:
                self.start(slot)
        self.kill_overdue()

    def highest_index(self, name):
        return max((index for (n, index) in self.slots if n == name), default=0)

    def start(self, slot):
        pass_fds = ()
        if slot.kind == CLOCK:
            fd = self.take_clock_lock(slot.name)
            if fd is None:
                if not slot.waiting_for_lock:
                    slot.waiting_for_lock = True
                    self.say(slot.name, f"{slot.label} waits for the running {slot.name} to exit")
                return
            slot.waiting_for_lock = False
            pass_fds = (fd,)
        try:
            log = self.log_for(slot.name)
            slot.popen = subprocess.Popen(shell_argv(slot.command), cwd=self.deploy_dir, env=self.environ(),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True, pass_fds=pass_fds,
                                          preexec_fn=_die_with_parent)
        except OSError as error:
            self.say(slot.name, f"{slot.label} could not start: {error}")
            slot.exits += 1
            slot.not_before = time.monotonic() + BACKOFF_MAX
            return
        finally:
            for fd in pass_fds:
                os.close(fd)   # the clock process holds the lock from here on
        slot.started, slot.stopping_since = time.time(), None
        self.say(slot.name, f"{slot.label} started (pid {slot.popen.pid})")

    def take_clock_lock(self, name):
        path = proclayout.clock_lock(self, self.app, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    def terminate(self, slot, why):
        slot.stopping_since = time.monotonic()
        self.say(slot.name, f"{slot.label} (pid {slot.popen.pid}) gets SIGTERM: {why}")
        signal_group(slot.popen.pid, signal.SIGTERM)

    def kill_overdue(self):
        for slot in self.slots.values():
            if (slot.popen is not None and slot.stopping_since is not None
                    and time.monotonic() - slot.stopping_since > self.stop_timeout):
                self.say(slot.name, f"{slot.label} (pid {slot.popen.pid}) still runs after "
                                    f"{self.stop_timeout:g} s: SIGKILL")
                signal_group(slot.popen.pid, signal.SIGKILL)
                slot.stopping_since = float("inf")   # once

    def reap(self):
        for slot in self.slots.values():
            if slot.popen is None or slot.popen.poll() is None:
                continue
            status, ran = slot.popen.returncode, time.time() - slot.started
            asked = slot.stopping_since is not None
            slot.popen, slot.last_exit = None, status
            if asked:
                self.say(slot.name, f"{slot.label} stopped (status {status})")
                continue
            slot.exits += 1
            slot.restarts += 1
            slot.failures_in_row = 1 if ran >= STEADY_AFTER else slot.failures_in_row + 1
            delay = min(BACKOFF_FIRST * 2 ** (slot.failures_in_row - 1), BACKOFF_MAX)
            slot.not_before = time.monotonic() + delay
            self.say(slot.name, f"{slot.label} exited (status {status}) after {ran:.1f} s; "
                                f"restarting in {delay:g} s")
        for run in list(self.cron_runs):
            if run.popen.poll() is not None:
                self.cron_runs.remove(run)
                self.say(run.name, f"{run.name} finished (status {run.popen.returncode}) after "
                                   f"{time.time() - run.started:.1f} s")

    # -- cron ----------------------------------------------------------------
    def fire_cron(self):
        minute = minute_of()
        if minute == self.checked_minute:
            return
        self.checked_minute = minute
        when = time.localtime(minute * 60)
        for job in self.crons:
            if job.due(when) and self.claim_tick(job.name, minute):
                self.start_cron(job, minute)

    def claim_tick(self, name, minute):
        """Record that job `name` fires at `minute`, unless some run of the
        app already did: True if this supervisor fires it."""
        fd = os.open(proclayout.cron_lock(self, self.app), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = proclayout.cron_ticks(self, self.app)
            try:
                with open(path, encoding="utf-8") as stream:
                    ticks = json.load(stream)
            except (OSError, ValueError):
                ticks = {}
            if ticks.get(name, -1) >= minute:
                return False
            if name not in ticks and time.time() - minute * 60 > FIRST_TICK_LATENESS:
                return False   # a new job starts at its next due minute, not late in this one
            ticks[name] = minute
            write_json(path, ticks)
            return True
        finally:
            os.close(fd)

    def start_cron(self, job, minute):
        log = self.log_for(job.name)
        try:
            popen = subprocess.Popen(shell_argv(job.command), cwd=self.deploy_dir, env=self.environ(),
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as error:
            self.say(job.name, f"{job.name} could not start: {error}")
            return
        self.cron_runs.append(CronRun(job.name, popen, time.time(), minute))
        self.say(job.name, f"{job.name} fired for {time.strftime('%H:%M', time.localtime(minute * 60))} "
                           f"(pid {popen.pid})")

    # -- stopping ------------------------------------------------------------
    def stop_all(self):
        """SIGTERM to workers and clocks; cron jobs may finish; SIGKILL to
        whatever still runs after the stop timeout."""
        self.say(None, f"stopping: SIGTERM to workers and clocks, up to {self.stop_timeout:g} s to finish")
        for slot in self.slots.values():
            if slot.popen is not None and slot.stopping_since is None:
                self.terminate(slot, "its version retires")
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            self.reap()
            self.write_state(False, stopping=True)
            if not self.running():
                break
            time.sleep(LOOK_INTERVAL)
        for slot in self.slots.values():
            if slot.popen is not None:
                self.say(slot.name, f"{slot.label} (pid {slot.popen.pid}) still runs: SIGKILL")
                signal_group(slot.popen.pid, signal.SIGKILL)
        for run in self.cron_runs:
            self.say(run.name, f"{run.name} (pid {run.popen.pid}) still runs: SIGKILL")
            signal_group(run.popen.pid, signal.SIGKILL)
        for popen in [s.popen for s in self.slots.values() if s.popen] + [r.popen for r in self.cron_runs]:
            popen.wait()
        self.reap()
        self.say(None, "stopped")
        try:
            os.unlink(proclayout.state_file(self, self.run))
        except OSError:
            pass

    def running(self):
        return any(s.popen is not None for s in self.slots.values()) or bool(self.cron_runs)

    # -- what the processes get, and what the supervisor tells ---------------
    def environ(self):
        environ = dict(os.environ)
        venv = os.path.join(self.deploy_dir, ".venv")
        if os.path.isdir(os.path.join(venv, "bin")):
            environ["VIRTUAL_ENV"] = venv
            environ["PATH"] = os.path.join(venv, "bin") + os.pathsep + environ.get("PATH", os.defpath)
        return environ

    def log_for(self, name):
        if name not in self.log_files:
            path = proclayout.type_log(self, self.run, name)
            self.log_files[name] = open(path, "ab", buffering=0)
        return self.log_files[name]

    def say(self, name, text):
        """A line of the supervisor's: in the type's log (or every type's)."""
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} [deploy-processes] {text}\n".encode()
        for each in [name] if name else [e.name for e in self.entries]:
            try:
                self.log_for(each).write(line)
            except OSError:
                pass

    def write_state(self, owner, stopping=False):
        state = {
            "run": self.run, "pid": os.getpid(), "started": self.started, "singletons": owner,
            "stopping": stopping,
            "processes": [{"name": s.name, "kind": s.kind, "index": s.index,
                           "pid": s.popen.pid if s.popen else None, "started": s.started if s.popen else None,
                           "restarts": s.restarts, "exits": s.exits, "last_exit": s.last_exit,
                           "waiting_for_lock": s.waiting_for_lock, "stopping": s.stopping_since is not None}
                          for s in self.slots.values()],
            "cron": [{"name": r.name, "pid": r.popen.pid, "started": r.started, "minute": r.minute}
                     for r in self.cron_runs],
            "types": [{"name": e.name, "kind": e.kind} for e in self.entries],
        }
        key = json.dumps(state, sort_keys=True)
        if key != self.state_written:
            write_json(proclayout.state_file(self, self.run), state)
            self.state_written = key


def signal_group(pid, signum):
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def write_json(path, value):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(value, stream)
    os.rename(temporary, path)


def read_state(settings, run_name):
    try:
        with open(proclayout.state_file(settings, run_name), encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError):
        return None


def supervise(app, run, deploy_dir, run_dir, log_dir, home, vassals_dir, stop_timeout, singletons, config=None):
    return Supervisor(app, run, deploy_dir, run_dir, log_dir, home, vassals_dir, stop_timeout, singletons,
                      config).main()
