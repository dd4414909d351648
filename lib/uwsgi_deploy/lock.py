"""One deploy per app at a time: flock(2) on ~/run/APP.lock.

The kernel drops the lock when its holder dies, so a crashed deploy leaves no
stale lock. The holder writes who it is into the file (`WHAT, pid PID, since
TIME`) for the one waiting; Holder reads it back."""
import fcntl
import os
import re
import time
from dataclasses import dataclass

from . import DeployError
from .waiting import wait_until

POLL = 0.1
# seconds a lock kept past a hook's exit (keep_until) waits for git to update the branch
LOCK_HANDOVER_TIMEOUT = 30
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
HOLDER_LINE = re.compile(r"(?P<what>.*), pid (?P<pid>[0-9]+), since (?P<since>.*)\Z")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: what (`APP-<rev> (push)`, `deploy-cleanup`), its pid
    and since when; pid and since are None when the file did not say."""
    what: str
    pid: int = None
    since: str = None

    @classmethod
    def parse(cls, text):
        text = text.strip()
        match = HOLDER_LINE.match(text)
        if not match:
            return cls(text or "unknown holder")
        return cls(match.group("what"), int(match.group("pid")), match.group("since"))

    def __str__(self):
        return self.what if self.pid is None else f"{self.what}, pid {self.pid}, since {self.since}"


class DeployLock:
    """flock(2) on path, waiting up to timeout seconds. shared: a reader's
    lock (many at once, none while an exclusive holder has it); it records no
    holder. waiting: what say() is told while it waits."""

    def __init__(self, path, timeout, holder, say=None, shared=False,
                 waiting="waiting for another deploy to finish"):
        self.path, self.timeout, self.holder, self.say = path, timeout, holder, say
        self.shared, self.waiting = shared, waiting
        self.fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        told = False

        def acquired():
            nonlocal told
            if self._try_lock():
                return True
            if not told and self.say:
                self.say(f"{self.waiting} ({self.current_holder()})")
                told = True
            return False
        if not wait_until(acquired, self.timeout, POLL):
            raise DeployError(f"another deploy holds {self.path} ({self.current_holder()}); "
                              f"gave up after {self.timeout:g} s")
        if not self.shared:
            line = Holder(self.holder, os.getpid(), time.strftime(TIME_FORMAT))
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{line}\n".encode(), 0)
        return self

    def _try_lock(self):
        while True:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self.fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self.fd)
                return False
            if self._still_the_file():
                return True
            os.close(self.fd)   # removed (by deploy-cleanup) while we waited: lock the new one

    def _still_the_file(self):
        try:
            return os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return False

    def keep_until(self, done, timeout):
        """Hold the lock past this process's exit, in a child, until done()
        (or timeout seconds). A pre-receive hook needs this: git updates the
        branch only after the hook exits, and a push waiting for the lock must
        not start before that, or it would deploy over a branch that moves."""
        if os.fork() != 0:
            return
        try:   # the keeper: no stdio (git waits for the hook's output to close)
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)

            def finished():
                try:
                    return done()
                except Exception:
                    return True
            wait_until(finished, timeout)
        finally:
            os._exit(0)

    def current_holder(self):
        return read_holder(self.path)

    def __exit__(self, *exc):
        if not self.shared:
            os.ftruncate(self.fd, 0)
        os.close(self.fd)   # closing releases the lock


def read_holder(path):
    """The Holder path's text names (possibly "unknown holder")."""
    try:
        with open(path) as stream:
            return Holder.parse(stream.read())
    except OSError:
        return Holder("unknown holder")


def is_locked(path):
    """True while some deploy holds the lock (used by deploy-cleanup)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def holder_of(path):
    """None while nobody holds the lock at path; else its Holder."""
    return read_holder(path) if is_locked(path) else None
