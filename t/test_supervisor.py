"""The supervisor (bin/deploy-processes) restarts a worker that exits, with a
backoff: 0.5 s, then doubling (issue 20, "a worker that crashes later is
restarted with a backoff"). Run as the Emperor runs it, without one: the
worker records each start itself."""
import json
import os
import re
import signal
import subprocess
import sys

from conftest import BIN, wait_until
from sandbox import process_ended
from uwsgi_deploy.supervisor import BACKOFF_FIRST

CRASHING = """import os, sys, time
with open(os.environ["STARTS"], "a") as stream:
    stream.write(f"{time.time()} {os.getpid()}\\n")
time.sleep(0.1)
sys.exit(3)
"""


def test_a_worker_that_exits_is_restarted_with_a_doubling_backoff(tmp_path):
    deploy, run, log, home = (tmp_path / name for name in ("app-0123456789ab", "run", "log", "home"))
    for directory in (deploy, run, log, home, home / "vassals"):
        directory.mkdir()
    (deploy / "Procfile").write_text("worker: python3 crash.py\n")
    (deploy / "crash.py").write_text(CRASHING)
    starts = tmp_path / "starts"
    supervisor = subprocess.Popen(
        [sys.executable, os.path.join(BIN, "deploy-processes"), "--app", "app", "--run", "app-0123456789ab",
         "--deploy-dir", str(deploy), "--run-dir", str(run), "--log-dir", str(log), "--home", str(home),
         "--vassals-dir", str(home / "vassals"), "--stop-timeout", "5", "--singletons", "yes"],
        env=dict(os.environ, STARTS=str(starts)), start_new_session=True)
    try:
        def started(count):
            return starts.exists() and len(starts.read_text().splitlines()) >= count
        wait_until(lambda: started(3), 30, "the worker's third start")
        times = [float(line.split()[0]) for line in starts.read_text().splitlines()]
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        # each gap: the worker's 0.1 s, then the backoff; a loaded machine may add to it
        assert len(gaps) >= 2
        for gap, backoff in zip(gaps, (BACKOFF_FIRST, 2 * BACKOFF_FIRST)):
            assert backoff + 0.1 <= gap < backoff + 2.0, gaps
        text = (log / "app-0123456789ab.worker.log").read_text()
        told = re.findall(r"worker\.1 exited \(status 3\) after [0-9.]+ s; restarting in ([0-9.]+) s", text)
        assert told[:2] == ["0.5", "1"], text
        with open(run / "app-0123456789ab.procs.state") as stream:
            [worker] = json.load(stream)["processes"]
        assert worker["restarts"] >= 2 and worker["last_exit"] == 3
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
    pids = [int(line.split()[1]) for line in starts.read_text().splitlines()]
    assert all(process_ended(pid) for pid in pids)
