"""What the two halves of a deploy share (pipeline.py runs them): the
request, fixed before the lock is taken; the target, fixed once it is held;
the stages' runner, which reports, times and names each stage; and Progress,
the whole of the state the deploy's signal handler reads."""
import contextlib
import os
import time
from dataclasses import dataclass

from . import DeployError, FailedWithOutput, error_line
from .checkout import clean_environ
from .lock import LOCK_HANDOVER_TIMEOUT
from .report import Reporter


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


@dataclass(frozen=True)
class Request:
    """What one deploy was asked to do; fixed for its whole run.
    version: the version asked for (a restart deploys the live version's
    next run instead: Target.version); via: what deploy.log says deployed
    it (push, deploy-version, rollback, config, fleet); source: a
    PushedCommit, or None for a version on disk; environ: the pusher's
    environment, cleaned (checkout.clean_environ); with_setup: False with
    --no-setup and for a restart; restart: the live version starts again as
    its next run (a configuration change). Made with asked()."""
    settings: object
    version: object
    via: str
    source: object
    environ: dict
    with_setup: bool
    restart: bool

    @classmethod
    def asked(cls, settings, version, via, source=None, environ=None, run_setup=True, restart=False):
        environ = os.environ if environ is None else environ
        return cls(settings, version, via, source, clean_environ(environ), run_setup and not restart, restart)

    @property
    def app(self):
        return self.version.app


@dataclass(frozen=True)
class LockTerms:
    """What the caller asks of a deploy's lock (a push: its branch).
    precondition() is checked once the lock is held (raise to refuse);
    on_refused() is called, lock held, when the deploy is refused; after a
    success the lock outlives the deploy until hold_lock_until() is true
    (git updating the branch)."""
    precondition: object = None
    on_refused: object = None
    hold_lock_until: object = None

    def check(self):
        """With the lock just taken: the precondition, if any."""
        if self.precondition:
            self.precondition()

    def refused(self):
        if self.on_refused:
            self.on_refused()

    def hand_over(self, lock):
        """After a success: the lock (a lock.DeployLock) is released once
        hold_lock_until() is true (at most LOCK_HANDOVER_TIMEOUT)."""
        if self.hold_lock_until:
            lock.keep_until(self.hold_lock_until, LOCK_HANDOVER_TIMEOUT)


@dataclass(frozen=True)
class Target:
    """Fixed once the lock is held (Deploy.begin). version: the run that is
    to go live (for a restart, the live version's next run); previous: the
    run live now, which a refused deploy leaves serving (None on a first
    deploy); logged_previous: what deploy.log will name as the version
    before it (the rollback target)."""
    version: object
    previous: object
    logged_previous: object


# Progress.phase: where a deploy is, as its signal handler sees it.
CANDIDATE = "candidate"     # before the switch: an interrupt abandons the candidate
ABANDONING = "abandoning"   # the candidate (or a switched-back version) is being removed
SWITCHED = "switched"       # the new version serves: the deploy finishes whatever comes


class Progress:
    """The state a deploy's signal handler reads, all of it in one place
    (Deploy.interruptible). stage: the stage running now, None between
    stages (it names an interrupt's failure). phase: CANDIDATE until the
    switch or a refusal; then SWITCHED (from the first instruction of the
    switch stage: its rename may be done) or ABANDONING (the removal of the
    candidate, or the switch back after a failed watch, must not be cut
    short by a second signal). It only moves forward: CANDIDATE ->
    SWITCHED -> ABANDONING, or CANDIDATE -> ABANDONING."""

    def __init__(self):
        self.stage = None
        self.phase = CANDIDATE

    @property
    def interruptible(self):
        """An interrupt now abandons the candidate, like any failure."""
        return self.phase == CANDIDATE


class Stages:
    """Runs a deploy's stages: a title line, the stage, `NAME done (S s)`;
    any exception in it becomes StageFailed(name, ...). on_stage(point) is
    called as each stage begins (with its name) and at points within one
    (point()): fault tests pause, kill or fail a deploy there."""

    def __init__(self, report=None, on_stage=None, progress=None):
        self.report = report or Reporter()
        self.on_stage = on_stage or (lambda point: None)
        self.progress = progress or Progress()
        self.started = time.monotonic()   # the deploy's clock (summary, deploy.log)

    @contextlib.contextmanager
    def stage(self, name, title):
        self.progress.stage = name
        try:
            self.on_stage(name)
            self.report.stage(title)
            start = time.monotonic()
            yield
            took = self.report.durations[name] = time.monotonic() - start
            self.report.say(f"{name} done ({took:.2f} s)")
        except Exception as error:
            raise StageFailed.of(name, error) from None
        finally:
            self.progress.stage = None

    def point(self, name):
        """A point within a stage where on_stage is called (see Deploy)."""
        self.on_stage(name)

    def elapsed(self):
        return time.monotonic() - self.started
