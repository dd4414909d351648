"""A version's vassal: its ini in the Emperor's directory, written so the
Emperor never reads half a file, and removed only once it has drained."""
import os
import signal
import time

from . import DeployError
from .layout import hidden_temporary
from .links import remove_if_exists
from .stats import poke, read_stats, vassal_state
from .waiting import wait_until


def write_vassal_ini(path, text):
    """Create or replace path with text, mode 0600 from the first byte (it holds
    secrets). Written under a name the Emperor ignores, then renamed in; a
    rewrite gets an mtime strictly later (in whole seconds) than the file it
    replaces, since the Emperor ignores a change within the same second."""
    temporary = hidden_temporary(path)
    remove_if_exists(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    try:
        previous = int(os.stat(path).st_mtime)
    except FileNotFoundError:
        previous = None
    if previous is not None:
        mtime = max(int(time.time()), previous + 1)
        os.utime(temporary, (mtime, mtime))
    os.rename(temporary, path)


def log_tail(path, lines=20):
    """The last lines of a vassal's log, for a failure message."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - 64 * 1024))
            text = stream.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def died_while_starting(settings, version, first_start):
    """Raise when the Emperor reports the candidate's vassal dead: cursed (it
    died before it was loyal) or, on its first start, respawned (a reload
    after a rewrite also counts as a respawn). Waiting longer for its probe
    would only repeat the failure."""
    state = vassal_state(read_stats(settings.emperor_stats), os.path.basename(version.vassal_ini))
    if state and (state.get("cursed") or (first_start and state.get("respawns"))):
        raise DeployError("the vassal died while starting")


def wait_vassal_gone(settings, version, timeout):
    """Wait until the Emperor no longer runs the version's vassal. Without an
    Emperor stats socket, wait for the vassal's own stats socket to vanish."""
    ini_name = os.path.basename(version.vassal_ini)

    def gone():
        stats = poke(settings)
        if stats is not None:
            return vassal_state(stats, ini_name) is None
        return not os.path.exists(version.stats_socket)
    return wait_until(gone, timeout)


def wait_workers_accepting(version, timeout):
    """Wait until every worker of the version accepts requests. A reload that
    arrives while a worker is still starting can leave that worker unburied
    until uWSGI's mercy runs out (60 s); a settled vassal reloads in ~1 s."""
    def accepting():
        workers = (read_stats(version.stats_socket) or {}).get("workers", [])
        return bool(workers) and all(worker.get("accepting") for worker in workers)
    return wait_until(accepting, timeout)


def is_drained(stats):
    return stats is None or (stats.get("listen_queue", 0) == 0 and not any(
        worker.get("status") == "busy" for worker in stats.get("workers", [])))


def wait_drained(version, timeout, settle=0.05):
    """Wait until the version has no queued connection and no busy worker, seen
    twice `settle` seconds apart (a connect that raced the switch shows up)."""
    calm_since = None

    def calm_long_enough():
        nonlocal calm_since
        if not is_drained(read_stats(version.stats_socket)):
            calm_since = None
            return False
        calm_since = calm_since or time.monotonic()
        return time.monotonic() - calm_since >= settle
    return wait_until(calm_long_enough, timeout)


def retire_vassal(version):
    """Remove a drained vassal: the Emperor stops it gracefully (a request that
    still runs finishes), and no deploy need wait for that. Its sockets go now:
    nothing routes to them any more."""
    remove_if_exists(version.vassal_ini)
    remove_if_exists(version.socket)
    remove_if_exists(version.stats_socket)


def vassal_pids(settings, version):
    """The vassal's master (from the Emperor) and workers (from its own stats)."""
    pids = []
    state = vassal_state(read_stats(settings.emperor_stats), os.path.basename(version.vassal_ini))
    if state and state.get("pid"):
        pids.append(state["pid"])
    for worker in (read_stats(version.stats_socket, timeout=0.5) or {}).get("workers", []):
        if worker.get("pid"):
            pids.append(worker["pid"])
    return pids


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def remove_vassal(settings, version, timeout, kill_after=None):
    """Remove the vassal's ini and wait until it has stopped (gracefully; with
    kill_after, SIGKILL its processes if it is still there after that many
    seconds), then remove what it may leave behind (sockets, if it could not
    vacuum)."""
    pids = vassal_pids(settings, version) if kill_after is not None else []
    existed = remove_if_exists(version.vassal_ini)
    gone = True
    if existed:
        gone = wait_vassal_gone(settings, version, timeout if kill_after is None else kill_after)
        if not gone and kill_after is not None:
            kill_pids(pids)
            gone = wait_vassal_gone(settings, version, timeout)
    remove_if_exists(version.socket)
    remove_if_exists(version.stats_socket)
    return gone
