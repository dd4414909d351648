"""The Flask + SQLAlchemy example: counts its visits in SQLite, and /ping
answers 200 only when the database does (the deployer's health check).
Each visit also queues a job for the worker (worker.py); a cron job
(report.py) writes a report each minute (see the Procfile)."""
import os

from flask import Flask
from sqlalchemy import text

from jobqueue import connect

engine = connect()
# uWSGI forks its workers after this import: no connection may cross the fork
engine.dispose()

app = Flask(__name__)


@app.get("/ping")
def ping():
    with engine.connect() as connection:
        connection.execute(text("SELECT count(*) FROM visits")).scalar_one()
    return "pong\n"


@app.get("/")
def hello():
    with engine.begin() as connection:
        visit = connection.execute(text("INSERT INTO visits (at) VALUES (datetime('now'))")).lastrowid
        connection.execute(text("INSERT INTO jobs (visit) VALUES (:visit)"), {"visit": visit})
        count = connection.execute(text("SELECT count(*) FROM visits")).scalar_one()
        done = connection.execute(text("SELECT count(*) FROM jobs WHERE state = 'done'")).scalar_one()
        report = connection.execute(text("SELECT at FROM reports ORDER BY id DESC LIMIT 1")).scalar()
    greeting = os.environ.get("GREETING", "Hello")
    return (f"{greeting} from Flask; visit number {count}; the worker has done {done} jobs; "
            f"last cron report: {report or 'none yet'}\n")
