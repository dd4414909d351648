"""The cron job: one line of figures per minute."""
from sqlalchemy import text

from jobqueue import connect

with connect().begin() as connection:
    visits = connection.execute(text("SELECT count(*) FROM visits")).scalar_one()
    done = connection.execute(text("SELECT count(*) FROM jobs WHERE state = 'done'")).scalar_one()
    connection.execute(text("INSERT INTO reports (at, visits, jobs_done) VALUES (datetime('now'), :v, :d)"),
                       {"v": visits, "d": done})
print(f"report: {visits} visits, {done} jobs done", flush=True)
