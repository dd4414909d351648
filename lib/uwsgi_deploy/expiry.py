"""A prepared candidate's time limit (DEPLOY_PREPARED_MAX_AGE): a host
removes by itself a candidate that its fleet controller never committed or
aborted (the controller died, or gave up on this host while it was cut off).

`deploy-version --prepare` starts a keeper for the candidate it leaves: a
small process of its own session, with no terminal and no output to the
ssh session. It checks the candidate's record every few seconds and ends as
soon as the record is gone or was written again (committed, aborted,
prepared anew); if the record is still the same one after the time limit,
it aborts the candidate (under the app's lock, like `deploy-version
--abort`: what is live is never touched) and logs that in
~/log/APP.expired.log. The app's next deploy, and deploy-emperor at start-up,
remove such a candidate too, whichever comes first."""
import os
import subprocess
import sys
import time

from .candidates import read_record
from .layout import App
from .settings import load

POLL = 5   # seconds between looks at the record
LIB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def keep(settings, version, environ):
    """Start the keeper of version's candidate, just prepared; None when
    there is no time limit (0) or no record."""
    record = read_record(version)
    if not settings.prepared_max_age or record is None:
        return None
    path = os.pathsep.join(p for p in (LIB_DIR, os.path.join(LIB_DIR, "site")) if os.path.isdir(p))
    env = dict(environ, PYTHONPATH=path)
    argv = [sys.executable, "-m", "uwsgi_deploy.expiry", version.app.name, version.rev, repr(record.since)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True, env=env, cwd="/")


def same_record(version, since):
    record = read_record(version)
    return record is not None and record.since == since


def expire(app_name, rev, since, environ=None):
    """The keeper: wait out the time limit, then abort the candidate if its
    record is still the one it was started for. True if it aborted."""
    from .pipeline import Deploy, Request   # the keeper imports the pipeline only to use it
    from .report import Reporter
    environ = os.environ if environ is None else environ
    settings = load(environ)
    app = App(settings, app_name)
    version = app.version(rev)
    deadline = since + settings.prepared_max_age
    while time.time() < deadline:
        if not same_record(version, since):
            return False
        time.sleep(max(0.1, min(POLL, deadline - time.time())))
    if not same_record(version, since):
        return False
    os.makedirs(settings.log_dir, exist_ok=True)
    with open(os.path.join(settings.log_dir, f"{app_name}.expired.log"), "a") as log:
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {version.run_name} prepared "
                  f"{time.time() - since:.0f} s ago and never committed (DEPLOY_PREPARED_MAX_AGE="
                  f"{settings.prepared_max_age:g}): removing it\n")
        log.flush()
        return Deploy(Request.asked(settings, version, "expired", environ=environ), Reporter(stream=log)).abort()


if __name__ == "__main__":
    os.umask(0o027)
    expire(sys.argv[1], sys.argv[2], float(sys.argv[3]))
