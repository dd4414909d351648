"""An app with background work for the tests and bench/background: a queue
worker, a clock and a per-minute cron job over one SQLite file (QUEUE_DB),
each recording what it did with timestamps of its own, and the checks of
what they recorded: every job done exactly once and none cut, never two
clocks alive at once, one tick per minute."""
import os
import sqlite3
import time

SCHEMA = """
create table if not exists jobs (id integer primary key, enqueued real, state text default 'queued');
create table if not exists runs (job integer, version text, pid integer, start real, finish real);
create table if not exists clocks (version text, pid integer, start real, stop real, beats integer default 0);
create table if not exists ticks (minute integer, version text, pid integer, start real, finish real);
"""

COMMON = '''import os, signal, sqlite3, sys, time
VERSION = {version!r}
stopping = []
signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))


def db():
    connection = sqlite3.connect(os.environ["QUEUE_DB"], timeout=30, isolation_level=None)
    connection.execute("pragma busy_timeout = 30000")
    return connection
'''

WORKER = COMMON + '''
JOB_SECONDS = float(os.environ.get("JOB_SECONDS", "1.5"))
if os.environ.get("WORKER_CRASHES"):
    sys.exit("worker: cannot start (WORKER_CRASHES is set)")
conn = db()
while not stopping:
    conn.execute("begin immediate")
    row = conn.execute("select id from jobs where state = 'queued' order by id limit 1").fetchone()
    if row is None:
        conn.execute("commit")
        time.sleep(0.05)
        continue
    conn.execute("update jobs set state = 'running' where id = ?", row)
    conn.execute("insert into runs (job, version, pid, start) values (?, ?, ?, ?)",
                 (row[0], VERSION, os.getpid(), time.time()))
    conn.execute("commit")
    end = time.time() + JOB_SECONDS
    while time.time() < end:          # the job: SIGTERM does not cut it
        time.sleep(0.05)
    conn.execute("update runs set finish = ? where job = ? and pid = ?", (time.time(), row[0], os.getpid()))
    conn.execute("update jobs set state = 'done' where id = ?", row)
print("worker", os.getpid(), "of", VERSION, "stops: SIGTERM", flush=True)
'''

CLOCK = COMMON + '''
conn = db()
cursor = conn.execute("insert into clocks (version, pid, start) values (?, ?, ?)",
                      (VERSION, os.getpid(), time.time()))
me = cursor.lastrowid
while not stopping:
    time.sleep(0.1)
    conn.execute("update clocks set beats = beats + 1 where rowid = ?", (me,))
time.sleep(float(os.environ.get("CLOCK_STOP_SECONDS", "0.3")))   # a clock's own shutdown takes a moment
conn.execute("update clocks set stop = ? where rowid = ?", (time.time(), me))
'''

CRON = COMMON + '''
conn = db()
minute = int(time.time() // 60)
cursor = conn.execute("insert into ticks (minute, version, pid, start) values (?, ?, ?, ?)",
                      (minute, VERSION, os.getpid(), time.time()))
time.sleep(float(os.environ.get("CRON_SECONDS", "2")))
conn.execute("update ticks set finish = ? where rowid = ?", (time.time(), cursor.lastrowid))
'''

PROCFILE = """web: uwsgi uwsgi.ini
worker: python3 worker.py
clock: python3 clock.py
cronminute: * * * * * python3 cronjob.py
"""


def files(version, procfile=PROCFILE):
    return {"worker.py": WORKER.format(version=version), "clock.py": CLOCK.format(version=version),
            "cronjob.py": CRON.format(version=version), "Procfile": procfile}


class Queue:
    """The test's side of QUEUE_DB: enqueue, and read what the processes did."""

    def __init__(self, path):
        self.path = path
        with self.connect() as conn:
            conn.executescript(SCHEMA)

    def connect(self):
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("pragma busy_timeout = 30000")
        return conn

    def enqueue(self):
        conn = self.connect()
        try:
            return conn.execute("insert into jobs (enqueued) values (?)", (time.time(),)).lastrowid
        finally:
            conn.close()

    def rows(self, sql, *args):
        conn = self.connect()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def pending(self):
        return self.rows("select count(*) from jobs where state != 'done'")[0][0]

    def job_report(self):
        """(jobs, done once, duplicates, cut, never run) — cut: a run that
        started and never finished."""
        jobs = self.rows("select count(*) from jobs")[0][0]
        runs = self.rows("select job, count(*), sum(finish is not null) from runs group by job")
        duplicates = [job for job, count, _ in runs if count > 1]
        cut = [row for row in self.rows("select job, version, pid from runs where finish is null")
               if not alive(row[2])]   # a job still in hand is not cut
        done_once = sum(1 for _, count, finished in runs if count == 1 and finished == 1)
        never = self.rows("select count(*) from jobs where id not in (select job from runs)")[0][0]
        return jobs, done_once, duplicates, cut, never

    def clock_overlaps(self):
        """Pairs of clock lives that overlapped (stop unknown counts as still alive)."""
        lives = sorted((start, stop if stop is not None else float("inf"), version, pid)
                       for version, pid, start, stop in self.rows("select version, pid, start, stop from clocks"))
        return [(a, b) for a, b in zip(lives, lives[1:]) if b[0] < a[1]]

    def clock_gaps(self):
        """Seconds between one clock's stop and the next one's start."""
        lives = sorted(self.rows("select start, stop from clocks"))
        return [b[0] - a[1] for a, b in zip(lives, lives[1:]) if a[1] is not None]

    def ticks(self):
        """{minute: [version, ...]} of the cron job's runs."""
        found = {}
        for minute, version in self.rows("select minute, version from ticks order by minute"):
            found.setdefault(minute, []).append(version)
        return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


def queue_path(root):
    return os.path.join(root, "queue.db")
