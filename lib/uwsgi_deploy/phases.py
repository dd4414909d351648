"""The two phases of a deploy, run apart on one host (deploy-version
--prepare, --commit, --abort): what a fleet deploy runs on every host.

  prepare APP COMMIT  checkout .. probe: the candidate runs on its own socket,
                      takes no traffic, and waits (candidates.py)
  commit APP REV      switch, watch, retire, link: it goes live
  abort APP REV       its candidate is removed; the live version is untouched

Each prints its stage lines on stderr, like a push, and one JSON object on
stdout for the program that drives it (the fleet playbook): what was live,
and whether anything changed. Running one again is safe: a live version is
neither prepared nor committed again, an abort of nothing removes nothing."""
import json
import os
import re
import sys

from . import DeployError
from .canary import request_abort
from .candidates import find_prepared, read_record
from .checkout import git
from .layout import REV_LENGTH, App
from .pipeline import Deploy
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


def prepare(app_name, rev, environ=None, out=None):
    environ = os.environ if environ is None else environ
    settings = load(environ)
    app = App(settings, app_name)
    commit_id = resolve_commit(app, check_rev(rev))
    version = app.version(commit_id)
    deploy = Deploy(settings, version, FLEET, PushedCommit(app.repo, commit_id), environ, Reporter())
    outcome = deploy.prepare()
    result(out or sys.stdout, version=version.name, prepared=outcome.changed, live=name_of(outcome.previous))


def commit(app_name, rev, environ=None, out=None):
    environ = os.environ if environ is None else environ
    settings = load(environ)
    app = App(settings, app_name)
    version = phase_version(app, rev)
    record = read_record(version)   # None: not prepared, which deploy.commit() refuses (or it is live)
    source = PushedCommit(app.repo, record.commit) if record else None
    deploy = Deploy(settings, version, record.how if record else FLEET, source, environ, Reporter())
    outcome = deploy.commit()
    previous = outcome.previous if outcome.changed else None
    result(out or sys.stdout, version=version.name, switched=outcome.changed, previous=name_of(previous),
           previous_rev=previous.rev if previous else None)


def abort(app_name, rev, environ=None, out=None):
    environ = os.environ if environ is None else environ
    settings = load(environ)
    app = App(settings, app_name)
    if request_abort(app, check_rev(rev), Reporter().stage):   # a canary runs: its deploy ends it
        result(out or sys.stdout, version=rev, removed=True, live=name_of(app.live_version()))
        return
    version = phase_version(app, rev)
    removed = Deploy(settings, version, "abort", None, environ, Reporter()).abort()
    result(out or sys.stdout, version=version.name, removed=removed, live=name_of(app.live_version()))


PHASES = {"prepare": prepare, "commit": commit, "abort": abort}


def run_phase(phase, app_name, rev):
    """deploy-version --prepare/--commit/--abort APP REV."""
    PHASES[phase](app_name, rev)
