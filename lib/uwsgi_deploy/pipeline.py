"""One deploy: checkout, env, setup, expand, probe, reconfigure, switch,
watch, retire, link. Each stage is a method. A failure before the switch,
whatever it is (a refusal, an OSError, a bug), removes the candidate (it
never served), leaves the live version serving and is reported as one line
`stage: reason`. After the switch only the watch can still refuse the push:
it switches back and lets the new version finish what it accepted; any later
problem is reported, and the new version stays live.

The stages fall in two phases: prepare (checkout .. probe: the candidate runs
on its own socket and takes no traffic) and commit (switch .. link). A deploy
runs both under the app's lock; a fleet deploy runs them apart, prepare on
every host, then commit on every host or abort on every host (phases.py)."""
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass

from . import DeployError, FailedWithOutput, error_line
from .deploylog import append_entry, known_commit
from .gate import key_of
from .candidates import read_record, write_record
from .checkout import clean_environ, deploy_dir, export_tree, inside
from .stats import poke
from .envfile import check_server_side, read_env_files
from .inventory import History
from .links import remove_if_exists, switch_symlink
from .health import watch_health
from .layout import create_directories
from .lock import DeployLock
from .paths import tools_first
from .probe import free_loopback_port, wait_for_200
from .recovery import sweep_app
from .setup_script import make_executable, run_setup
from .uwsgi_ini import expand_ini, log_cap_options
from .venv_key import REQUIREMENTS_FILE
from .venvs import provide as provide_environment
from .vassal import (died_while_starting, log_tail, remove_vassal, retire_vassal,
                     wait_drained, wait_vassal_gone, wait_workers_accepting,
                     write_vassal_ini)


CANDIDATE_GRACE = 2.0   # seconds a failed candidate gets to stop by itself
LOCK_HANDOVER_TIMEOUT = 30   # seconds the lock waits for git to update the branch
INTERRUPTS = (signal.SIGHUP, signal.SIGPIPE, signal.SIGINT, signal.SIGTERM)


class StageFailed(DeployError):
    """A stage failed: the message is `stage: reason`; tail holds the last
    lines of tail_of (setup's output, the vassal's log) when they tell more."""

    def __init__(self, stage, reason, tail=(), tail_of=None):
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason, self.tail, self.tail_of = stage, reason, list(tail), tail_of

    @classmethod
    def of(cls, stage, error):
        """Any exception raised in stage, as one line (see error_line)."""
        if isinstance(error, StageFailed):
            return error
        if isinstance(error, FailedWithOutput):
            return cls(stage, str(error), error.tail, error.tail_of)
        return cls(stage, error_line(error))


@dataclass(frozen=True)
class PushedCommit:
    """Where a pushed version comes from: commit, in the repository git_dir.
    A deploy of a version already on disk has no source (None)."""
    git_dir: str
    commit: str


class Reporter:
    """What the pusher sees: a line per stage, durations, failures with ` !`."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.durations = {}
        self.client_gone = False

    def line(self, text):
        """Write a line; if the pusher has gone away, the deploy carries on."""
        if self.client_gone:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except OSError:     # EPIPE: the client disconnected
            self.client_gone = True

    def binary_stream(self):
        """Where setup's raw output goes (the pusher), or None once gone."""
        return None if self.client_gone else getattr(self.stream, "buffer", self.stream)

    def say(self, text):
        self.line("       " + text)

    def warn(self, text):
        self.line(" !     " + text)


class Deploy:
    """Deploy `version` of an app, from source (a PushedCommit), or None for
    a version already on disk. With restart, the version live when the lock
    is taken starts again as its next run (a configuration change), without
    setup. on_stage(point), when given, is called as each stage begins (with
    its name) and at a few points within one ("venv-install", "venv-rename"
    in the environment's build, "log" before deploy.log is written): fault
    tests pause, kill or fail a deploy there; whatever it raises fails the
    stage like any error."""

    def __init__(self, settings, version, how, source, environ=None, reporter=None, run_setup=True,
                 precondition=None, hold_lock_until=None, restart=False, on_refused=None, on_stage=None):
        self.settings, self.version, self.app = settings, version, version.app
        self.how, self.source, self.run_setup = how, source, run_setup and not restart
        self.restart = restart
        self.precondition = precondition   # checked once the lock is held
        self.on_refused = on_refused       # called, lock held, when the deploy is refused
        self.hold_lock_until = hold_lock_until   # after success, the lock outlives us until this
        self.environ = clean_environ(os.environ if environ is None else environ)
        self.key = key_of(self.environ)    # the scoped key that asked (deploy.log names it)
        self.report = reporter or Reporter()
        self.on_stage = on_stage or (lambda point: None)
        self.current_stage = None   # the stage running now, for a failure's message
        self.started = time.monotonic()
        self.switched = self.abandoning = False

    # -- the whole run, and its two phases -------------------------------------
    # A deploy is prepare_candidate (checkout .. probe: the candidate runs on
    # its own socket, takes no traffic) then commit_candidate (switch .. link).
    # run() does both under one lock; a fleet deploy runs prepare() on every
    # host, then commit() on every host or abort() on every host (phases.py).
    def run(self):
        """Deploy; raise DeployError (one line) if the version did not go live."""
        with self.one_line_failures():
            return self._run()

    @contextlib.contextmanager
    def one_line_failures(self):
        """Signals handled as interrupts (see interruptible), and any exception
        outside a stage (before checkout, or after the link) as one line."""
        with self.interruptible():
            try:
                yield
            except DeployError:
                raise
            except Exception as error:
                raise StageFailed.of(self.current_stage or "deploy", error) from None

    @contextlib.contextmanager
    def stage(self, name, title):
        """A stage: its title, then `NAME done (S s)`; any exception raised in
        it becomes StageFailed(name, ...)."""
        self.current_stage = name
        try:
            self.on_stage(name)
            self.report.line(f"-----> {title}")
            start = time.monotonic()
            yield
            took = self.report.durations[name] = time.monotonic() - start
            self.report.say(f"{name} done ({took:.2f} s)")
        except Exception as error:
            raise StageFailed.of(name, error) from None
        finally:
            self.current_stage = None

    @contextlib.contextmanager
    def interruptible(self):
        """A lost client (SIGPIPE, SIGHUP) or SIGINT/SIGTERM before the switch
        abandons the candidate like any failure; after the switch the new
        version is live, so the deploy finishes instead."""
        def interrupted(signum, frame):
            if not self.switched and not self.abandoning:
                raise StageFailed(self.current_stage or "deploy", f"interrupted by {signal.Signals(signum).name}")
        saved = {sig: signal.signal(sig, interrupted) for sig in INTERRUPTS}
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def lock(self):
        holder = f"{self.version.name} ({self.how})"
        return DeployLock(self.app.lock_file, self.settings.lock_timeout, holder, self.report.say)

    def _run(self):
        with self.lock() as lock:
            previous = self.begin()
            if self.already_live(previous):
                return previous
            self.prepare_candidate(previous)
            self.commit_candidate(previous)
            if self.hold_lock_until:
                lock.keep_until(self.hold_lock_until, LOCK_HANDOVER_TIMEOUT)
        self.report.line(self.summary())
        return previous

    def prepare(self):
        """Phase one alone: the candidate is left running on its socket,
        untouched by traffic, with its record (candidates.py), when the lock
        is released. True; False, with nothing prepared, when this version
        is live already. self.previous is the version live now."""
        with self.one_line_failures(), self.lock():
            previous = self.begin()
            if self.already_live(previous):
                return False
            self.prepare_candidate(previous)
            write_record(self.version, self.source.commit, self.how)
        self.report.line(f"-----> {self.version.run_name} is prepared: it answers {self.settings.ping_path} on "
                         f"{self.version.socket} and takes no traffic until its commit "
                         f"({time.monotonic() - self.started:.1f} s)")
        return True

    def commit(self):
        """Phase two alone, for the candidate prepare() left (found again by
        its record). True once it is live; False when it was live already
        (nothing done). self.previous is the version it took traffic from."""
        with self.one_line_failures(), self.lock():
            previous = self.begin()
            if self.already_live(previous):
                return False
            try:
                self.check_prepared()
            except Exception as error:
                self.refuse(StageFailed.of("commit", error), previous)
            remove_if_exists(self.version.prepared_file)   # from here on it is this deploy's
            self.commit_candidate(previous)
        self.report.line(self.summary())
        return True

    def check_prepared(self):
        """The candidate is still there and answers: only what happened since
        the prepare can fail here (a deploy in between removed it, the
        Emperor restarted, the app died)."""
        if read_record(self.version) is None:
            raise DeployError(f"{self.version.run_name} is not prepared (deploy-version --prepare first; "
                              "a deploy of the app since then removes it)")
        if not os.path.exists(self.version.vassal_ini):
            raise DeployError(f"{self.version.run_name}'s vassal is gone since it was prepared")
        target = "unix:" + self.version.socket
        result = wait_for_200(target, self.settings.ping_path, self.settings.probe_timeout,
                              alive=lambda: died_while_starting(self.settings, self.version, False))
        if not result.ok:
            raise DeployError(f"{self.version.run_name} stopped answering since it was prepared "
                              f"(GET {self.settings.ping_path} on {target}: {result.seen})")

    def abort(self):
        """Remove the version's candidate, if it has one that is not live.
        True if there was one."""
        with self.one_line_failures(), self.lock():
            live = self.app.live_version()
            if live is not None and live.run_name == self.version.run_name:
                self.report.line(f"-----> {self.version.run_name} is live: nothing to abort")
                return False
            self.abandoning = True
            removed = self.abandon_candidate()
        self.report.line(f"-----> aborted: {self.version.run_name}'s candidate is removed" if removed else
                         f"-----> {self.version.run_name} has no candidate: nothing to abort")
        return removed

    def begin(self):
        """With the lock held: the precondition, then the version live now
        (the one to come back to)."""
        if self.precondition:
            self.precondition()
        previous = self.previous = self.logged_previous = self.app.live_version()
        if self.restart:
            self.restart_live(previous)
        return previous

    def already_live(self, previous):
        if not self.restart and previous == self.version and os.path.exists(previous.vassal_ini):
            self.report.line(f"-----> {self.version.name} is already live")
            return True
        return False

    def prepare_candidate(self, previous):
        """checkout .. probe: what dead deploys left goes first; any failure
        removes the candidate and leaves the live version serving."""
        sweep_app(self.settings, self.app, self.report.say)
        try:
            self.checkout()
            self.find_deploy_files()
            entries = self.read_env()
            self.setup(entries)
            self.expand(entries)
            self.probe()
            self.reconfigure()
        except Exception as error:   # whatever it is, the candidate must go
            self.refuse(StageFailed.of(self.current_stage or "deploy", error), previous)

    def refuse(self, failure, previous):
        """Before the switch: the candidate goes, the push is refused with
        failure (a StageFailed)."""
        self.abandoning = True
        self.abandon_candidate()
        self.report_failure(failure)
        self.report_not_deployed(previous)
        raise failure from None

    def commit_candidate(self, previous):
        """switch, watch (a broken version is switched back and the push
        refused), retire the previous version, link."""
        try:
            self.switch()   # an exception in it comes before the rename: nothing switched
        except Exception as error:
            self.refuse(StageFailed.of("switch", error), previous)
        try:
            self.watch()
        except Exception as error:
            failure = StageFailed.of("watch", error)
            self.switch_back(previous)
            self.report_failure(failure)
            self.retire_served(self.version)
            self.report_not_deployed(previous)
            raise failure from None
        self.retire(previous)
        self.link()

    def report_failure(self, failure):
        """The failed stage and why (a StageFailed), with the lines that tell more."""
        self.report.warn(str(failure))
        if failure.tail:
            self.report.warn(f"last {len(failure.tail)} lines of {failure.tail_of}:")
            for line in failure.tail:
                self.report.warn("  " + line)

    def report_not_deployed(self, previous):
        still = f"{previous.run_name} is still live" if previous else "no version was live"
        self.report.warn(f"{self.version.run_name} not deployed; {still}")
        if self.on_refused:
            self.on_refused()

    def restart_live(self, live):
        """The live version (whichever it is now) runs again, beside the running
        one, under its next run name; deploy.log keeps naming the version before
        it as the rollback target."""
        if live is None:
            raise DeployError(f"nothing of {self.app.name} is live to restart")
        self.version = live.restart()
        self.logged_previous = History(self.app).previous_version(live)
        self.report.line(f"-----> Restarting {live.name} as {self.version.run_name}, beside {live.run_name}")

    def summary(self):
        """The last line: when the new version took traffic (the switch) and,
        with a watch, that the push returned only after watching it."""
        total = time.monotonic() - self.started
        setup = self.report.durations.get("setup")
        extra = f", setup {setup:.1f} s" if setup is not None else ""
        watched = self.report.durations.get("watch")
        after = f", then watched it {watched:.1f} s" if watched is not None else ""
        return (f"-----> {self.version.run_name} is live: serving {self.live_at - self.started:.2f} s into "
                f"the deploy{after} ({total:.1f} s in all{extra})")

    # -- before the switch: any failure leaves the live version alone --------
    def checkout(self):
        if self.source is None:
            if not os.path.isdir(self.version.workdir):
                raise StageFailed("checkout", f"{self.version.workdir}: no such directory")
            return
        with self.stage("checkout", f"Checking out {self.source.commit[:12]} into {self.version.workdir}"):
            export_tree(self.source.git_dir, self.source.commit, self.version)

    def find_deploy_files(self):
        try:
            self.deploy_dir = deploy_dir(self.version.workdir)
        except DeployError as error:
            raise StageFailed("checkout", str(error)) from None

    def deploy_file(self, name, stage):
        """A deploy file's path if it exists, refusing links out of the checkout."""
        path = os.path.join(self.deploy_dir, name)
        if not os.path.lexists(path):
            return None
        try:
            inside(self.version.workdir, path, os.path.relpath(path, self.version.workdir))
        except DeployError as error:
            raise StageFailed(stage, str(error)) from None
        return path

    def read_env(self):
        with self.stage("env", "Reading environment"):
            for server_side in (self.settings.env_file, self.app.env_file):
                check_server_side(server_side, self.report.warn)
            paths = self.app.env_files(self.deploy_file("environment.sh", "env"))
            entries = read_env_files(paths, self.environ, warn=self.report.warn)
            names = ", ".join(entries) or "none"
            self.report.say(f"variables from {', '.join(paths) or 'no file'}: {names}")
            return entries

    def setup(self, entries):
        """The app's setup script; or, with none, the dependency environment
        for its requirements.txt (what a setup calling deploy-venv gets)."""
        script = self.deploy_file("setup", "setup")
        requirements = None if script else self.deploy_file(REQUIREMENTS_FILE, "setup")
        if script is None and requirements is None:
            return
        if not self.run_setup:
            why = "a restart keeps the version's files" if self.restart else "--no-setup"
            self.report.line(f"-----> Skipping setup ({why})")
            return
        environ = dict(self.environ, **{name: e.value for name, e in entries.items()})
        if script is None:
            with self.stage("setup", f"Preparing the environment for {REQUIREMENTS_FILE} (no setup)"):
                provide_environment(self.settings, self.deploy_dir, environ=environ,
                                    output=self.report.binary_stream, say=self.report.say,
                                    warn=self.report.warn, holder=f"{self.version.name} ({self.how})",
                                    check_ini=True, on_point=self.on_stage)
            return
        with self.stage("setup", "Running setup"):
            make_executable(script)
            environ["PATH"] = tools_first(environ.get("PATH"))   # deploy-venv, from setup
            run_setup(script, self.deploy_dir, environ, self.settings.setup_timeout,
                      self.report.binary_stream)

    def expand(self, entries):
        with self.stage("expand", "Expanding uwsgi.ini"):
            ini = self.deploy_file("uwsgi.ini", "expand")
            if ini is None:
                raise DeployError(f"no uwsgi.ini in {self.deploy_dir} (nor written by setup)")
            self.version.check_socket_paths()
            self.ini, self.entries = ini, list(entries.values())
            self.vassal_text(("http-socket", "127.0.0.1:1"))   # refuse bad input now

    def vassal_text(self, listen):
        """The vassal ini: the user's, expanded, with where it listens and logs.
        need-app makes a failed import kill the vassal instead of serving 500s;
        the daemon that caps the log runs under (and turns on) the master."""
        log_cap = self.settings.vassal_log_max_mb * 1024 * 1024
        logs = [("logto", self.version.log)]
        if log_cap:
            logs += log_cap_options(self.version.log, self.version.log_backup, log_cap)
        return expand_ini(self.ini, self.entries, chdir=self.deploy_dir,
                          extra=[("need-app", "true"), *logs,
                                 ("stats", self.version.stats_socket), listen])

    def probe(self):
        """Start the candidate where the probe can reach it: straight on its
        unix socket (the default), or with DEPLOY_PROBE_VIA=http on a free
        loopback HTTP port, which costs the reload of the next stage."""
        with self.stage("probe", f"Probing {self.version.run_name} for {self.settings.ping_path}"):
            create_directories(self.settings)
            # a retired incarnation of this version may still be finishing requests
            if not wait_vassal_gone(self.settings, self.version, self.settings.drain_timeout):
                raise DeployError(f"an earlier {self.version.name} vassal is still stopping")
            remove_if_exists(self.version.log)   # this attempt's log only
            remove_if_exists(self.version.log_backup)
            if self.settings.probe_via == "socket":
                self.start_candidate(("socket", self.version.socket), "unix:" + self.version.socket,
                                     self.settings.probe_timeout, first_start=True)
            else:
                port = free_loopback_port()
                self.start_candidate(("http-socket", f"127.0.0.1:{port}"), f"http://127.0.0.1:{port}",
                                     self.settings.probe_timeout, first_start=True)

    def reconfigure(self):
        """Rewrite the vassal to listen on its unix socket; the Emperor reloads it."""
        if self.settings.probe_via == "socket":
            return   # it has listened there from the start
        with self.stage("reconfigure", f"Moving {self.version.run_name} to its socket"):
            self.start_candidate(("socket", self.version.socket), "unix:" + self.version.socket,
                                 self.settings.ready_timeout, first_start=False)

    def start_candidate(self, listen, target, timeout, first_start):
        """Write the vassal listening on `listen` and wait until target answers
        the ping path with 200 and every worker accepts (the first answer can
        come while a reload still spawns workers). A failure carries the tail
        of the vassal's log."""
        try:
            write_vassal_ini(self.version.vassal_ini, self.vassal_text(listen))
            poke(self.settings)
            result = wait_for_200(target, self.settings.ping_path, timeout,
                                  alive=lambda: died_while_starting(self.settings, self.version, first_start))
            if not result.ok:
                raise DeployError(f"GET {self.settings.ping_path} on {target}: no 200 within "
                                  f"{timeout:g} s (last: {result.seen})")
            if not wait_workers_accepting(self.version, timeout):
                raise DeployError("its workers did not all start accepting requests")
        except DeployError as error:
            raise FailedWithOutput(str(error), log_tail(self.version.log), "the vassal log") from None

    def abandon_candidate(self):
        """A candidate serves nobody: a short grace, then it is killed (an app
        stuck importing would ignore a graceful stop). Should that fail too,
        the next deploy's sweep removes it; the first failure is what counts.
        True if it existed."""
        existed = os.path.exists(self.version.vassal_ini)
        try:
            remove_vassal(self.settings, self.version, self.settings.drain_timeout,
                          kill_after=CANDIDATE_GRACE)
            remove_if_exists(self.version.prepared_file)
        except Exception as error:
            self.report.warn(f"could not remove {self.version.run_name} now ({error_line(error)}); "
                             "the next deploy will")
        return existed

    # -- the switch and after: the new version is live -----------------------
    def switch(self):
        with self.stage("switch", f"Switching {self.app.live_socket} to {self.version.run_name}"):
            self.switched = True     # first: a signal from here on must not abandon it
            switch_symlink(self.app.live_socket, self.version.socket)
            self.live_at = time.monotonic()

    def watch(self):
        """For DEPLOY_WATCH seconds after the switch, the old version still
        running, judge the new one's health (see health.py): a busy version
        passes, a broken one is switched back."""
        if self.settings.watch <= 0:
            return
        with self.stage("watch", f"Watching {self.version.run_name} for {self.settings.watch:g} s"):
            watch_health(self.settings, self.version, self.settings.watch, self.report.say)

    def switch_back(self, previous):
        """The watch failed: traffic goes back to the previous version at once
        (or, on a first deploy, nowhere, as before). The new version has served
        requests, so it is then retired like any old version (retire_served):
        no request that reached it is cut."""
        self.abandoning = True
        if previous is not None:
            switch_symlink(self.app.live_socket, previous.socket)
            self.report.warn(f"switched back to {previous.run_name}")
        else:
            remove_if_exists(self.app.live_socket)

    def retire_served(self, version):
        """Remove a version that took traffic, once its queue is empty and no
        worker is busy (at most DEPLOY_DRAIN_TIMEOUT); the Emperor stops it
        gracefully, so a request still running finishes."""
        self.report.say(f"letting {version.run_name} finish the requests it accepted")
        if not wait_drained(version, self.settings.drain_timeout):
            self.report.warn(f"{version.run_name} still busy after {self.settings.drain_timeout:g} s; "
                             "stopping it gracefully")
        retire_vassal(version)

    def retire(self, previous):
        if previous is None or previous.run_name == self.version.run_name:
            return
        with self.stage("retire", f"Retiring {previous.run_name}"):
            self.retire_served(previous)

    def link(self):
        with self.stage("link", f"Linking {self.app.home_link}"):
            switch_symlink(self.app.home_link, self.version.workdir)
            self.on_stage("log")
            commit = self.source.commit if self.source else known_commit(self.settings.log_file, self.version)
            append_entry(self.settings.log_file, self.version, commit, self.how,
                         time.monotonic() - self.started, self.logged_previous, key=self.key)
