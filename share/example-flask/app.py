"""The Flask + SQLAlchemy example: counts its visits in SQLite, and /ping
answers 200 only when the database does (the deployer's health check)."""
import os

from flask import Flask
from sqlalchemy import create_engine, text

# Outside the version's directory, so the data outlives each deploy.
DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:////tmp/example-flask.sqlite3")

engine = create_engine(DATABASE_URL, connect_args={"timeout": 10})
with engine.begin() as connection:
    # IF NOT EXISTS: the old and the new version may start at the same time
    connection.execute(text("CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, at TEXT)"))
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
        connection.execute(text("INSERT INTO visits (at) VALUES (datetime('now'))"))
        count = connection.execute(text("SELECT count(*) FROM visits")).scalar_one()
    greeting = os.environ.get("GREETING", "Hello")
    return f"{greeting} from Flask; visit number {count}\n"
