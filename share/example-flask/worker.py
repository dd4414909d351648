"""The queue worker: takes the oldest queued job, does it, marks it done.
On SIGTERM (its version retires) it finishes the job in hand, then exits."""
import os
import signal
import time

from sqlalchemy import text

from jobqueue import connect

stopping = []
signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
engine = connect()
me = f"{os.path.basename(os.getcwd())} pid {os.getpid()}"
print(f"worker {me} started", flush=True)
while not stopping:
    with engine.begin() as connection:
        job = connection.execute(text("SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1")).first()
        if job is not None:   # claimed in the same transaction: no other worker takes it
            connection.execute(text("UPDATE jobs SET state = 'running', done_by = :me WHERE id = :id"),
                               {"me": me, "id": job.id})
    if job is None:
        time.sleep(0.2)
        continue
    time.sleep(0.5)           # the work
    with engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET state = 'done' WHERE id = :id"), {"id": job.id})
print(f"worker {me} stops", flush=True)
