"""One deploy per app at a time: flock(2) on ~/run/APP.lock.

The kernel drops the lock when its holder dies, so a crashed deploy leaves no
stale lock. The holder writes who it is into the file for the one waiting."""
import fcntl
import os
import time

from . import DeployError

POLL = 0.1


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
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self.fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                if self._still_the_file():
                    break
                os.close(self.fd)   # removed (by deploy-cleanup) while we waited: lock the new one
                continue
            except BlockingIOError:
                os.close(self.fd)
                holder = self.current_holder()
                if time.monotonic() >= deadline:
                    raise DeployError(f"another deploy holds {self.path} ({holder}); "
                                      f"gave up after {self.timeout:g} s") from None
                if not told and self.say:
                    self.say(f"{self.waiting} ({holder})")
                    told = True
                time.sleep(POLL)
        if not self.shared:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{self.holder}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        return self

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
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    if done():
                        break
                except Exception:
                    break
                time.sleep(0.02)
        finally:
            os._exit(0)

    def current_holder(self):
        try:
            with open(self.path) as stream:
                return stream.read().strip() or "unknown holder"
        except OSError:
            return "unknown holder"

    def __exit__(self, *exc):
        if not self.shared:
            os.ftruncate(self.fd, 0)
        os.close(self.fd)   # closing releases the lock


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
