"""Versions already on disk: choosing one (directory, rev prefix, previous),
deploying it again (rollback), and restarting the live one (a configuration
change)."""
import os

from . import DeployError
from .inventory import History, version_by_prefix
from .layout import App, version_from_dir
from .pipeline import Deploy, LockTerms, Request
from .settings import load


def previous_version(app):
    version = History(app).previous_version()
    if version is None:
        raise DeployError(f"deploy.log names no version of {app.name} before the live one")
    if not os.path.isdir(version.workdir):
        raise DeployError(f"{version.name}, the previous version, is no longer on disk")
    return version


def version_from_directory(settings, directory):
    if not os.path.isdir(directory):
        raise DeployError(f"{directory}: no such directory")
    version = version_from_dir(settings, directory)
    if os.path.realpath(directory) != os.path.realpath(version.workdir):
        raise DeployError(f"{directory}: versions live in {settings.home} (DEPLOY_HOME)")
    return version


def deploy_version(target, prefix=None, previous=False, run_setup=True, environ=None):
    """deploy-version: TARGET is a directory, or an app with a rev prefix, or
    (with previous) an app whose previous version is deployed."""
    environ = os.environ if environ is None else environ
    settings = load(environ)
    if previous:
        version, via = previous_version(App(settings, target)), "rollback"
    elif prefix is not None:
        version, via = version_by_prefix(App(settings, target), prefix), "deploy-version"
    else:
        version, via = version_from_directory(settings, target), "deploy-version"
    Deploy(Request.asked(settings, version, via, environ=environ, run_setup=run_setup)).run()


def restart_live(settings, app, environ=None, reporter=None, precondition=None, on_refused=None):
    """Start the live version again beside the running one, through the same
    pipeline from the environment step on, without setup: how a change of its
    server-side variables takes effect with zero downtime. precondition runs
    and on_refused is called (on a refusal) with the app's deploy lock held."""
    live = app.live_version()
    if live is None:
        raise DeployError(f"nothing of {app.name} is live")
    Deploy(Request.asked(settings, live, "config", environ=environ, restart=True), reporter,
           LockTerms(precondition=precondition, on_refused=on_refused)).run()
