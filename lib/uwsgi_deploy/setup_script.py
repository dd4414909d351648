"""Running the app's `setup` script (and the installers that build its
environment): live output, bounded time, flat memory, and nothing it started
left running once it is done."""
import collections
import ctypes
import os
import select
import shutil
import signal
import stat
import subprocess
import time

from . import DeployError, FailedWithOutput
from .layout import hidden_temporary
from .waiting import wait_until

TAIL_LINES = 20
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STRAY_TIMEOUT = 10.0   # seconds to end what a run left behind


def _prctl(option, value):
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def make_executable(path):
    """A setup without its x bit (committed from a system without file
    modes, say) is made executable rather than refused: as a copy renamed
    over it, since the file is a link to content other versions share
    (store.py) whose mode must not change."""
    mode = os.stat(path).st_mode
    if mode & stat.S_IXUSR:
        return
    temporary = hidden_temporary(path, os.getpid())
    shutil.copyfile(path, temporary)
    os.chmod(temporary, stat.S_IMODE(mode) | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.rename(temporary, path)


def _die_with_parent():
    """In the child: get SIGKILL when the deploy dies (Linux prctl), so a
    killed deploy leaves no setup running."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def children():
    """PIDs whose parent is this process (read from /proc: the kernel's
    /proc/PID/task/TID/children is not always built in)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stream:
                fields = stream.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            found.append(int(entry))
    return found


def end_strays(known, what, timeout=STRAY_TIMEOUT):
    """SIGKILL and reap every child of this process that is not in known.
    With this process a child subreaper, that includes whatever setup started
    and left behind (a `cmd &`, a setsid or double-forked daemon): orphans are
    re-parented here instead of to init, and their own orphans follow them."""
    strays = []

    def none_left():
        strays[:] = [pid for pid in children() if pid not in known]
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in strays:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        return not strays
    if not wait_until(none_left, timeout, interval=0):
        raise DeployError(f"{what} left {len(strays)} processes that would not stop")


def run_setup(script, cwd, environ, timeout, output):
    """Run the app's setup script; see run_streaming."""
    return run_streaming([script], cwd, environ, timeout, output, "setup")


def run_streaming(argv, cwd, environ, timeout, output, what):
    """Run argv in cwd, copying its output (stdout and stderr) as it comes to
    the binary stream output() returns (None: the pusher is gone, drop it).
    Returns the last lines; raises FailedWithOutput (with those lines) naming
    `what` on a non-zero exit or after timeout seconds. However it ends, every process it
    started is gone when this returns: this process becomes a child
    subreaper, so that daemons it detaches come back here to be ended (one
    run at a time per process: another child started meanwhile would be
    ended too)."""
    tail = collections.deque(maxlen=TAIL_LINES)
    partial = b""
    if not _prctl(PR_SET_CHILD_SUBREAPER, 1):
        raise DeployError(f"cannot become a child subreaper (prctl), so {what}'s processes could not be ended")
    known = set(children())
    process = subprocess.Popen(argv, cwd=cwd, env=environ, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise FailedWithOutput(f"{what} did not finish within {timeout:g} s (DEPLOY_SETUP_TIMEOUT)",
                                       tail, f"{what} output")
            ready, _, _ = select.select([process.stdout], [], [], min(remaining, 1.0))
            if not ready:
                if process.poll() is not None:
                    break   # exited; a daemon it left may hold the pipe open
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            stream = output()
            if stream is not None:
                try:
                    stream.write(chunk)
                    stream.flush()
                except OSError:   # the pusher went away; setup goes on
                    pass
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()[-4096:]
            tail.extend(line[-4096:].decode("utf-8", "replace") for line in lines)
    finally:
        if process.returncode is None:   # not reaped yet, so its group id is still its own
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        status = process.wait()
        end_strays(known, what)
        process.stdout.close()
    if partial:
        tail.append(partial.decode("utf-8", "replace"))
    if status != 0:
        reason = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
        raise FailedWithOutput(f"{what} {reason}", tail, f"{what} output")
    return list(tail)
