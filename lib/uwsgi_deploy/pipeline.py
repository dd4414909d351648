"""One deploy, in two halves, under the app's deploy lock:

  the candidate (candidate.py)  checkout, env, setup, expand, probe, reconfigure:
                                the new version starts on its own socket and
                                takes no traffic; all of it can be abandoned
  the switch (switch.py)        switch, watch, retire, link: it takes the traffic

A failure before the switch, whatever it is (a refusal, an OSError, a bug),
removes the candidate (it never served), leaves the live version serving and
is reported as one line `stage: reason`. After the switch only the watch can
still refuse the push: it switches back and lets the new version finish what
it accepted; any later problem is reported, and the new version stays live.

run() does both halves under one lock; a fleet deploy runs them apart,
prepare() on every host, then commit() on every host or abort() on every
host (phases.py). The state the deploy's signal handler reads is
stages.Progress, and nothing else."""
import contextlib
import os
import signal
from dataclasses import dataclass

from . import DeployError
from .candidate import Candidate
from .candidates import write_record
from .checkout import clean_environ
from .inventory import History
from .links import remove_if_exists
from .lock import LOCK_HANDOVER_TIMEOUT, DeployLock
from .recovery import sweep_app
from .report import Reporter
from .stages import ABANDONING, PushedCommit, Request, StageFailed, Stages, Target
from .switch import Switch

__all__ = ["Deploy", "Outcome", "PushedCommit", "StageFailed"]

INTERRUPTS = (signal.SIGHUP, signal.SIGPIPE, signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Outcome:
    """What a deploy, or one of its phases, did. changed: False when there
    was nothing to do (the version was live already); previous: the run that
    was live when the lock was taken."""
    changed: bool
    previous: object


class Deploy:
    """Deploy `version` of an app, from source (a PushedCommit), or None for
    a version already on disk. With restart, the version live when the lock
    is taken starts again as its next run (a configuration change), without
    setup. on_stage(point), when given, is called as each stage begins (with
    its name) and at a few points within one ("venv-install", "venv-rename"
    in the environment's build, "log" before deploy.log is written): fault
    tests pause, kill or fail a deploy there; whatever it raises fails the
    stage like any error.

    precondition() is checked once the lock is held; on_refused() is called,
    lock held, when the deploy is refused; after a success the lock outlives
    the deploy until hold_lock_until() is true (git updating the branch)."""

    def __init__(self, settings, version, how, source, environ=None, reporter=None, run_setup=True,
                 precondition=None, hold_lock_until=None, restart=False, on_refused=None, on_stage=None):
        self.version = version   # as asked; a restart deploys its next run (Target.version)
        self.request = Request(settings, version.app, how, source,
                               clean_environ(os.environ if environ is None else environ),
                               run_setup and not restart, restart)
        self.precondition, self.on_refused, self.hold_lock_until = precondition, on_refused, hold_lock_until
        self.stages = Stages(reporter or Reporter(), on_stage)
        self.report, self.progress = self.stages.report, self.stages.progress

    # -- the whole run, and its two phases -------------------------------------
    def run(self):
        """Deploy; raise DeployError (one line) if the version did not go live."""
        with self.one_line_failures():
            with self.lock() as lock:
                target = self.begin()
                if self.already_live(target):
                    return Outcome(False, target.previous)
                self.prepare_candidate(target)
                switch = self.commit_candidate(target)
                if self.hold_lock_until:
                    lock.keep_until(self.hold_lock_until, LOCK_HANDOVER_TIMEOUT)
            self.report.stage(switch.summary())
            return Outcome(True, target.previous)

    def prepare(self):
        """Phase one alone: the candidate is left running on its socket,
        untouched by traffic, with its record (candidates.py), when the lock
        is released. Outcome.changed is False, with nothing prepared, when
        this version is live already."""
        with self.one_line_failures(), self.lock():
            target = self.begin()
            if self.already_live(target):
                return Outcome(False, target.previous)
            self.prepare_candidate(target)
            write_record(target.version, self.request.source.commit, self.request.how)
        self.report.stage(f"{target.version.run_name} is prepared: it answers {self.request.settings.ping_path} on "
                          f"{target.version.socket} and takes no traffic until its commit "
                          f"({self.stages.elapsed():.1f} s)")
        return Outcome(True, target.previous)

    def commit(self):
        """Phase two alone, for the candidate prepare() left (found again by
        its record). Outcome.changed is False when it was live already
        (nothing done); previous is the version it took traffic from."""
        with self.one_line_failures(), self.lock():
            target = self.begin()
            if self.already_live(target):
                return Outcome(False, target.previous)
            try:
                self.candidate(target).check_prepared()
            except Exception as error:
                self.refuse(StageFailed.of("commit", error), target)
            remove_if_exists(target.version.prepared_file)   # from here on it is this deploy's
            switch = self.commit_candidate(target)
        self.report.stage(switch.summary())
        return Outcome(True, target.previous)

    def abort(self):
        """Remove the version's candidate, if it has one that is not live.
        True if there was one."""
        with self.one_line_failures(), self.lock():
            live = self.request.app.live_version()
            if live is not None and live.run_name == self.version.run_name:
                self.report.stage(f"{self.version.run_name} is live: nothing to abort")
                return False
            self.progress.phase = ABANDONING
            removed = Candidate(self.request, self.version, self.stages).abandon()
        self.report.stage(f"aborted: {self.version.run_name}'s candidate is removed" if removed else
                          f"{self.version.run_name} has no candidate: nothing to abort")
        return removed

    # -- under the lock ----------------------------------------------------------
    def lock(self):
        holder = f"{self.version.name} ({self.request.how})"
        return DeployLock(self.request.app.lock_file, self.request.settings.lock_timeout, holder, self.report.say)

    def begin(self):
        """With the lock held: the precondition, then the Target: the version
        live now (the one to come back to) and, for a restart, its next run."""
        if self.precondition:
            self.precondition()
        previous = self.request.app.live_version()
        if not self.request.restart:
            return Target(self.version, previous, previous)
        return self.restart_live(previous)

    def restart_live(self, live):
        """The live version (whichever it is now) runs again, beside the running
        one, under its next run name; deploy.log keeps naming the version before
        it as the rollback target."""
        if live is None:
            raise DeployError(f"nothing of {self.request.app.name} is live to restart")
        target = Target(live.restart(), live, History(self.request.app).previous_version(live))
        self.report.stage(f"Restarting {live.name} as {target.version.run_name}, beside {live.run_name}")
        return target

    def already_live(self, target):
        previous = target.previous
        if not self.request.restart and previous == target.version and os.path.exists(previous.vassal_ini):
            self.report.stage(f"{target.version.name} is already live")
            return True
        return False

    def candidate(self, target):
        return Candidate(self.request, target.version, self.stages)

    def prepare_candidate(self, target):
        """checkout .. probe: what dead deploys left goes first; any failure
        removes the candidate and leaves the live version serving."""
        sweep_app(self.request.settings, self.request.app, self.report.say)
        try:
            self.candidate(target).build()
        except Exception as error:   # whatever it is, the candidate must go
            self.refuse(StageFailed.of(self.progress.stage or "deploy", error), target)

    def refuse(self, failure, target):
        """Before the switch: the candidate goes, the push is refused with
        failure (a StageFailed)."""
        self.progress.phase = ABANDONING
        self.candidate(target).abandon()
        self.report_failure(failure)
        self.report_not_deployed(target)
        raise failure from None

    def commit_candidate(self, target):
        """switch, watch (a broken version is switched back and the push
        refused), retire the previous version, link. The Switch, done."""
        switch = Switch(self.request, target, self.stages)
        try:
            switch.switch()   # an exception in it comes before the rename: nothing switched
        except Exception as error:
            self.refuse(StageFailed.of("switch", error), target)
        try:
            switch.watch()
        except Exception as error:
            failure = StageFailed.of("watch", error)
            switch.switch_back()
            self.report_failure(failure)
            switch.retire_served(target.version)
            self.report_not_deployed(target)
            raise failure from None
        switch.retire()
        switch.link()
        return switch

    def report_failure(self, failure):
        """The failed stage and why (a StageFailed), with the lines that tell more."""
        self.report.warn(str(failure))
        if failure.tail:
            self.report.warn(f"last {len(failure.tail)} lines of {failure.tail_of}:")
            for line in failure.tail:
                self.report.warn("  " + line)

    def report_not_deployed(self, target):
        previous = target.previous
        still = f"{previous.run_name} is still live" if previous else "no version was live"
        self.report.warn(f"{target.version.run_name} not deployed; {still}")
        if self.on_refused:
            self.on_refused()

    # -- signals and one-line failures ---------------------------------------
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
                raise StageFailed.of(self.progress.stage or "deploy", error) from None

    @contextlib.contextmanager
    def interruptible(self):
        """A lost client (SIGPIPE, SIGHUP) or SIGINT/SIGTERM before the switch
        abandons the candidate like any failure; after the switch the new
        version is live, so the deploy finishes instead. The handler reads
        self.progress (stages.Progress) and nothing else."""
        progress = self.progress

        def interrupted(signum, frame):
            if progress.interruptible:
                raise StageFailed(progress.stage or "deploy", f"interrupted by {signal.Signals(signum).name}")
        saved = {sig: signal.signal(sig, interrupted) for sig in INTERRUPTS}
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
