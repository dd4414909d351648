"""The two phases of a deploy, run apart on one host (deploy-version
--prepare, --commit, --abort): what a fleet deploy runs on every host.

  prepare APP COMMIT  checkout .. probe: the candidate runs on its own socket,
                      takes no traffic, and waits (candidates.py)
  commit APP REV      switch, watch, retire, link: it goes live
  abort APP REV       its candidate is removed; the live version is untouched
  undo APP REV        what a fleet deploy of REV did here is undone: its
                      candidate removed, and if REV is live, the version live
                      before it (deploy.log's `previous`) deployed again

Each takes an optional deadline (--until EPOCH, the controller's clock): a
phase that reaches the host after it (a command held up by a partition and
delivered when the host came back) refuses to run, so that no controller
changes a host after it gave up on it. Each prints its stage lines on stderr, like a push, and one JSON object on
stdout for the program that drives it (the fleet playbook): what was live,
and whether anything changed. Running one again is safe: a live version is
neither prepared nor committed again, an abort of nothing removes nothing."""
import json
import os
import re
import sys
import time

from . import DeployError, expiry
from .canary import request_abort
from .candidates import find_prepared, read_record
from .checkout import git
from .inventory import History
from .layout import REV_LENGTH, App
from .pipeline import Deploy, Request
from .report import Reporter
from .settings import load
from .stages import PushedCommit, StageFailed

COMMIT = re.compile(r"[0-9a-fA-F]{4,40}\Z")
FLEET = "fleet"   # how deploy.log names a version a fleet deploy committed


def check_rev(rev):
    if not COMMIT.match(rev):
        raise DeployError(f"{rev!r} is not a commit: give 4 to 40 hex digits")
    return rev.lower()


def resolve_commit(app, rev):
    """The full commit rev names in ~/APP.git, where a fleet deploy pushes it."""
    if not os.path.isdir(app.repo):
        raise StageFailed("prepare", f"no repository {app.repo} (deploy-init {app.name} first)")
    try:
        return git(app.repo, "rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}")
    except DeployError:
        raise StageFailed("prepare", f"{rev} is no commit in {app.repo} (push it there first)") from None


def result(out, **fields):
    out.write(json.dumps(fields) + "\n")
    out.flush()


def name_of(version):
    return version.run_name if version else None


def check_deadline(phase, until):
    """Refuse a phase that arrives after the controller's deadline."""
    if until is not None and time.time() > until:
        raise DeployError(f"the fleet deploy's deadline passed {time.time() - until:.0f} s ago: "
                          f"its controller gave up on this host, so the {phase} does not run")


def begin(phase, app_name, environ, until):
    """Every phase's start: its deadline checked, then (environ, settings,
    the App) by environ (None: this process's)."""
    check_deadline(phase, until)
    environ = os.environ if environ is None else environ
    settings = load(environ)
    return environ, settings, App(settings, app_name)


def phase_version(app, rev):
    """The version REV names for a commit or an abort: a prepared one, else
    the live one, else (with a whole rev) the one it names."""
    rev = check_rev(rev)
    version = find_prepared(app, rev)
    live = app.live_version()
    if version is None and live is not None and live.rev.startswith(rev[:REV_LENGTH]):
        version = app.version(live.rev)
    if version is None and len(rev) >= REV_LENGTH:
        version = app.version(rev)
    if version is None:
        raise DeployError(f"no prepared candidate of {app.name} matches {rev!r}")
    return version


def prepare(app_name, rev, environ=None, out=None, until=None):
    environ, settings, app = begin("prepare", app_name, environ, until)
    commit_id = resolve_commit(app, check_rev(rev))
    version = app.version(commit_id)
    deploy = Deploy(Request.asked(settings, version, FLEET, PushedCommit(app.repo, commit_id), environ), Reporter())
    outcome = deploy.prepare()
    if outcome.changed:
        expiry.keep(settings, version, environ)   # removed by this host if never committed
    previous = outcome.previous
    result(out or sys.stdout, version=version.name, prepared=outcome.changed, live=name_of(previous),
           live_rev=previous.rev if previous else None)


def commit(app_name, rev, environ=None, out=None, until=None):
    environ, settings, app = begin("commit", app_name, environ, until)
    version = phase_version(app, rev)
    record = read_record(version)   # None: not prepared, which deploy.commit() refuses (or it is live)
    source = PushedCommit(app.repo, record.commit) if record else None
    deploy = Deploy(Request.asked(settings, version, record.via if record else FLEET, source, environ), Reporter())
    outcome = deploy.commit()
    previous = outcome.previous if outcome.changed else None
    result(out or sys.stdout, version=version.name, switched=outcome.changed, previous=name_of(previous),
           previous_rev=previous.rev if previous else None)


def abort(app_name, rev, environ=None, out=None, until=None):
    environ, settings, app = begin("abort", app_name, environ, until)
    if request_abort(app, check_rev(rev), Reporter().stage):   # a canary runs: its deploy ends it
        result(out or sys.stdout, version=rev, removed=True, live=name_of(app.live_version()))
        return
    version = phase_version(app, rev)
    removed = Deploy(Request.asked(settings, version, "abort", environ=environ), Reporter()).abort()
    result(out or sys.stdout, version=version.name, removed=removed, live=name_of(app.live_version()))


def undo(app_name, rev, environ=None, out=None, until=None):
    """A fleet deploy of rev failed or was interrupted: whatever it left here
    goes. First its candidate, under the app's lock (a commit of it still
    running here finishes first, so rev's state is settled); then, if rev is
    live, the version deploy.log says was live before it, with no setup."""
    environ, settings, app = begin("undo", app_name, environ, until)
    rev = check_rev(rev)
    if len(rev) < REV_LENGTH:
        raise DeployError(f"{rev!r} is too short to undo: give at least {REV_LENGTH} hex digits")
    version = app.version(rev)
    removed = Deploy(Request.asked(settings, version, "abort", environ=environ), Reporter()).abort()
    live = app.live_version()
    back = None
    if live is not None and live.rev == version.rev:
        back = History(app).previous_version(live)
        if back is None or not os.path.isdir(back.workdir):
            raise DeployError(f"{live.run_name} is live and nothing live before it is on disk to go back to")
        Deploy(Request.asked(settings, back, "rollback", environ=environ, run_setup=False), Reporter()).run()
    result(out or sys.stdout, version=version.name, removed=removed, rolled_back_to=name_of(back),
           live=name_of(app.live_version()))


PHASES = {"prepare": prepare, "commit": commit, "abort": abort, "undo": undo}


def run_phase(phase, app_name, rev, until=None):
    """deploy-version --prepare/--commit/--abort/--undo APP REV [--until EPOCH]."""
    PHASES[phase](app_name, rev, until=until)
