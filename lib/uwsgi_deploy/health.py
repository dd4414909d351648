"""Is a version that takes traffic healthy? What the post-switch watch judges.

Broken, when any of these is seen:
- its vassal, or one of its workers, died and was respawned;
- GET /ping answered anything but 200;
- its socket refused the connection, or is gone;
- a GET /ping got no answer for DEPLOY_PROBE_TIMEOUT seconds (the app hangs).
Not broken: busy. While every worker serves a slow request, /ping waits in
the listen queue behind them; the watch waits for that answer (up to
DEPLOY_PROBE_TIMEOUT) instead of taking the wait for a fault. A full listen
queue is busy too: the old version would be no less full."""
import os
import time
from dataclasses import dataclass

from . import DeployError
from .stats import read_stats, vassal_state
from .probe import QUEUE_FULL, PendingPing

LOOK_INTERVAL = 0.1   # seconds between looks at the version's processes and its ping


UNKNOWN = object()    # the Emperor's stats did not answer this time


@dataclass(frozen=True)
class Processes:
    """Who serves for a version: its master's pid (the Emperor's record; None
    once the Emperor runs no such vassal) and {worker id: pid} (its own stats;
    None when they did not answer). A look that got no answer proves nothing:
    a master busy respawning answers late."""
    master: object
    workers: dict

    @classmethod
    def look(cls, settings, version):
        emperor = read_stats(settings.emperor_stats)
        if emperor is None:
            master = UNKNOWN
        else:
            state = vassal_state(emperor, os.path.basename(version.vassal_ini))
            master = state.get("pid") if state else None
        stats = read_stats(version.stats_socket, timeout=1.0)
        workers = None if stats is None else {w.get("id"): w.get("pid") for w in stats.get("workers", [])}
        return cls(master, workers)

    def filled_from(self, later):
        """This look, with what it could not see taken from a later look."""
        return Processes(later.master if self.master is UNKNOWN else self.master,
                         later.workers if self.workers is None else self.workers)


def what_died(before, now):
    """Why the processes `now` are not those `before`, or None."""
    if UNKNOWN not in (before.master, now.master):
        if now.master is None:
            return "its vassal died"
        if now.master != before.master:
            return "its vassal died and was respawned"
    if now.workers is not None and before.workers is not None:
        respawned = sorted(str(wid) for wid, pid in now.workers.items() if before.workers.get(wid) != pid)
        if respawned:
            return f"worker {', '.join(respawned)} crashed and was respawned"
    return None


def busy_summary(version):
    """`2 of 2 workers busy, 5 queued`, for progress lines."""
    stats = read_stats(version.stats_socket, timeout=1.0) or {}
    workers = stats.get("workers", [])
    busy = sum(1 for w in workers if w.get("status") == "busy")
    return f"{busy} of {len(workers)} workers busy, {stats.get('listen_queue', 0)} queued"


def watch_health(settings, version, seconds, say=None, traffic=None, also=()):
    """Watch version for `seconds` after the switch; raise DeployError naming
    what broke. A /ping still waiting when the window closes is waited for
    (a busy version answers late), up to DEPLOY_PROBE_TIMEOUT after it was sent.
    traffic (a traffic.TrafficWatch), when given, is polled at each look (it
    raises when the version's requests are clearly worse) and may keep the
    window open while it has too few requests to judge.
    also: looks taken at each look of the watch, each a callable
    also(window_closing) or None (skipped): the version's background
    processes (background.watch_check) and what it opens (listeners.WatchOpened).
    Each raises when it finds the version broken; the window stays open
    until every one returns true."""
    path, timeout = settings.ping_path, settings.probe_timeout
    also = [check for check in also if check is not None]
    first = Processes.look(settings, version)
    window_end = time.monotonic() + seconds
    ping, told, extended = None, False, False
    try:
        while True:
            now = Processes.look(settings, version)
            died = what_died(first, now)
            if died:
                raise DeployError(died)
            first = first.filled_from(now)
            if traffic is not None:
                traffic.poll()
            closing = time.monotonic() >= window_end
            settled = all([check(window_closing=closing) for check in also])   # every one looks
            if ping is None:
                if time.monotonic() >= window_end:
                    more = traffic.wants_more() if traffic is not None else ""
                    if not more and settled:
                        return
                    if not more:
                        time.sleep(LOOK_INTERVAL)   # the window is over: only the processes are awaited
                        continue
                    if say and not extended:
                        extended = True
                        say(f"{more}: watching up to {settings.watch_max:g} s (DEPLOY_WATCH_MAX)")
                ping = PendingPing(version.socket, path)
            result = ping.poll()
            if result is not None:
                ping = None
                if not result.ok and result.seen != QUEUE_FULL:
                    raise DeployError(f"GET {path} answered {result.seen} after going live")
            elif ping.age >= timeout:
                raise DeployError(f"GET {path} got no answer for {timeout:g} s (DEPLOY_PROBE_TIMEOUT): "
                                  f"the app hangs ({busy_summary(version)})")
            elif say and not told and time.monotonic() >= window_end:
                told = True
                say(f"GET {path} waits behind busy workers ({busy_summary(version)}); "
                    f"waiting up to {timeout:g} s for its answer")
            time.sleep(LOOK_INTERVAL)
    finally:
        if ping is not None:
            ping.close()
