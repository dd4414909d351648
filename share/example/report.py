"""The cron job (see the Procfile): one line a minute on the queue."""
import jobs

counts = dict(jobs.connect().execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
print(f"report: {counts.get('done', 0)} jobs done, {counts.get('queued', 0)} queued", flush=True)
