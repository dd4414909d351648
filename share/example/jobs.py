"""The job queue: a table in SQLite (Python's own sqlite3), shared by the web
app (POST /jobs queues a job), the worker (worker.py does them) and the cron
job (report.py). It is a file in the deploy account's home, not in the
version's directory, so queued jobs outlive every deploy."""
import os
import sqlite3

PATH = os.path.join(os.path.expanduser("~"), "example.jobs.sqlite3")


def connect():
    db = sqlite3.connect(PATH, timeout=10, isolation_level=None)   # each statement commits
    db.execute("CREATE TABLE IF NOT EXISTS jobs "
               "(id INTEGER PRIMARY KEY, state TEXT NOT NULL DEFAULT 'queued', done_by TEXT)")
    return db


def enqueue():
    db = connect()
    try:
        return db.execute("INSERT INTO jobs DEFAULT VALUES").lastrowid
    finally:
        db.close()


def take(db, me):
    """The oldest queued job's id, claimed by `me` (no other worker gets it); None if none."""
    row = db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1").fetchone()
    if row and db.execute("UPDATE jobs SET state = 'running', done_by = ? WHERE id = ? AND state = 'queued'",
                          (me, row[0])).rowcount:
        return row[0]
    return None


def finish(db, job):
    db.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (job,))
