"""A plain SQLite job queue, shared by the web app (it enqueues), the
worker (it does the jobs) and the cron job (it reports)."""
import os

from sqlalchemy import create_engine, text

# Outside the version's directory, so the data outlives each deploy.
DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:////tmp/example-flask.sqlite3")


def connect():
    engine = create_engine(DATABASE_URL, connect_args={"timeout": 10})
    with engine.begin() as connection:
        # IF NOT EXISTS: the old and the new version may start at the same time
        for table in ("visits (id INTEGER PRIMARY KEY, at TEXT)",
                      "jobs (id INTEGER PRIMARY KEY, visit INTEGER, state TEXT DEFAULT 'queued', done_by TEXT)",
                      "reports (id INTEGER PRIMARY KEY, at TEXT, visits INTEGER, jobs_done INTEGER)"):
            connection.execute(text(f"CREATE TABLE IF NOT EXISTS {table}"))
    return engine
