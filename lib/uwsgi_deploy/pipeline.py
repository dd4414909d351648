"""One deploy, in two halves, under the app's deploy lock:

  the candidate (candidate.py)  checkout, env, setup, expand, probe, reconfigure:
                                the new version starts on its own socket and
                                takes no traffic; all of it can be abandoned
  the switch (switch.py)        switch, watch, retire, link: it takes the traffic

A failure before the switch, whatever it is (a refusal, an OSError, a bug),
removes the candidate (it never served), leaves the live version serving and
is reported as one line `stage: reason`. After the switch only the watch can
still refuse the push: it switches back and lets the new version finish what
it accepted. Once the watch passed, nothing refuses it: a failure in retire,
link or the deploy.log line is a warning (and the log line, when it can be
written, names what was left undone); the new version stays live and the
push succeeds (Switch.finish).

run() does both halves under one lock; a fleet deploy runs them apart,
prepare() on every host, then commit() on every host or abort() on every
host (phases.py). The state the deploy's signal handler reads is
stages.Progress, and nothing else."""
import contextlib
import os
import signal
from dataclasses import dataclass

from . import DeployError, error_line
from . import canary as canaries
from .candidate import Candidate
from .candidates import write_record
from .gate import key_of
from .inventory import History
from .links import remove_if_exists
from .lock import DeployLock
from .recovery import sweep_app
from .report import Reporter
from .stages import ABANDONING, LockTerms, PushedCommit, Request, StageFailed, Stages, Target
from .switch import Switch

__all__ = ["Deploy", "LockTerms", "Outcome", "PushedCommit", "Request", "StageFailed"]

INTERRUPTS = (signal.SIGHUP, signal.SIGPIPE, signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Outcome:
    """What a deploy, or one of its phases, did. changed: False when there
    was nothing to do (the version was live already); previous: the run that
    was live when the lock was taken."""
    changed: bool
    previous: object


class Deploy:
    """Deploy what request (a stages.Request) asks: its version from its
    source (a PushedCommit), or a version already on disk (no source). With
    restart, the version live when the lock is taken starts again as its
    next run (a configuration change), without setup. terms (a LockTerms):
    what the caller asks of the lock (a push: its branch unchanged, and the
    lock held until git updated it). on_stage(point), when given, is called
    as each stage begins (with its name) and at a few points within one
    ("store-write" within each write of new content to the store,
    "venv-install", "venv-rename" in the environment's build, "log" before
    deploy.log is written): fault tests pause, kill or fail a deploy there;
    whatever it raises fails the stage like any error. canary: seconds of a
    canary before the switch (canary.py)."""

    def __init__(self, request, reporter=None, terms=LockTerms(), on_stage=None, canary=0):
        self.request, self.terms, self.canary_seconds = request, terms, canary
        self.version = request.version   # as asked; a restart deploys its next run (Target.version)
        key_of(request.environ)   # a DEPLOY_KEY deploy.log could not record refuses it now, not after the switch
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
                if self.terms.hold_lock_until:
                    self.hand_over(lock)
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
            write_record(target.version, self.request.source.commit, self.request.via)
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
        holder = f"{self.version.name} ({self.request.via})"
        return DeployLock(self.request.app.lock_file, self.request.settings.lock_timeout, holder, self.report.say)

    def begin(self):
        """With the lock held: the precondition, then the Target: the version
        live now (the one to come back to) and, for a restart, its next run."""
        self.terms.check()
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
        """canary (when asked: canary.py), switch, watch (a broken version is
        switched back and the push refused), then finish: retire the previous
        version, link, log, where a failure is only a warning. The Switch, done."""
        switch = Switch(self.request, target, self.stages)
        if self.canary_seconds:
            canaries.run(self, switch, target, self.canary_seconds)
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
        switch.finish()   # from here on nothing refuses the push
        return switch

    def hand_over(self, lock):
        """The lock outlives the hook until git updated the branch. The new
        version is live: should that fail, it is a warning, not a refusal."""
        try:
            self.terms.hand_over(lock)
        except Exception as error:
            self.report.warn(f"the lock is released now, not after git updates the branch ({error_line(error)})")

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
        self.terms.refused()

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
