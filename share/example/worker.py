"""The worker (see the Procfile): does the queued jobs, one at a time. On
SIGTERM (its version retires) it finishes the job in hand, then exits."""
import os
import signal
import time

import jobs

stopping = []
signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
me = f"{os.path.basename(os.getcwd())} pid {os.getpid()}"
db = jobs.connect()
print(f"worker of {me}: waiting for jobs", flush=True)
while not stopping:
    job = jobs.take(db, me)
    if job is None:
        time.sleep(0.2)
        continue
    time.sleep(0.5)   # the work
    jobs.finish(db, job)
    print(f"worker of {me}: did job {job}", flush=True)
print(f"worker of {me}: stopping", flush=True)
