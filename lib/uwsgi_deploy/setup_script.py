"""Running the app's `setup` script (and the installers that build its
environment): live output, bounded time, flat memory."""
import collections
import ctypes
import os
import select
import signal
import stat
import subprocess
import time

from . import DeployError

TAIL_LINES = 20
PR_SET_PDEATHSIG = 1


def make_executable(path):
    """Like the original tool: a setup without its x bit is made executable."""
    mode = os.stat(path).st_mode
    if not mode & stat.S_IXUSR:
        os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _die_with_parent():
    """In the child: get SIGKILL when the deploy dies (Linux prctl), so a
    killed deploy leaves no setup running."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def run_setup(script, cwd, environ, timeout, output):
    """Run the app's setup script; see run_streaming."""
    return run_streaming([script], cwd, environ, timeout, output, "setup")


def run_streaming(argv, cwd, environ, timeout, output, what):
    """Run argv in cwd, copying its output (stdout and stderr) as it comes to
    the binary stream output() returns (None: the pusher is gone, drop it).
    Returns the last lines; raises DeployError (with .tail) naming `what` on a
    non-zero exit or after timeout seconds."""
    tail = collections.deque(maxlen=TAIL_LINES)
    partial = b""
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
                error = DeployError(f"{what} did not finish within {timeout:g} s (DEPLOY_SETUP_TIMEOUT)")
                error.tail = list(tail)
                raise error
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
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        status = process.wait()
        process.stdout.close()
    if partial:
        tail.append(partial.decode("utf-8", "replace"))
    if status != 0:
        reason = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
        error = DeployError(f"{what} {reason}")
        error.tail = list(tail)
        raise error
    return list(tail)
