"""One deploy per app at a time: flock(2) on ~/run/APP.lock.

The kernel drops the lock when its holder dies, so a crashed deploy leaves no
stale lock. The holder writes who it is into the file for the one waiting."""
import fcntl
import os
import time

from . import DeployError

POLL = 0.1


class DeployLock:
    def __init__(self, path, timeout, holder, say=None):
        self.path, self.timeout, self.holder, self.say = path, timeout, holder, say
        self.fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.current_holder()
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise DeployError(f"another deploy holds {self.path} ({holder}); "
                                      f"gave up after {self.timeout:g} s") from None
                if not told and self.say:
                    self.say(f"waiting for another deploy to finish ({holder})")
                    told = True
                time.sleep(POLL)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{self.holder}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        return self

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
