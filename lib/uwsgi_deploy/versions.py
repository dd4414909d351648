"""Versions already on disk: deploying one again (rollback)."""
import os

from . import DeployError
from .layout import version_from_dir
from .pipeline import Deploy
from .settings import load


def deploy_directory(directory, environ=None):
    environ = os.environ if environ is None else environ
    settings = load(environ)
    if not os.path.isdir(directory):
        raise DeployError(f"{directory}: no such directory")
    version = version_from_dir(settings, directory)
    if os.path.realpath(directory) != os.path.realpath(version.workdir):
        raise DeployError(f"{directory}: versions live in {settings.home} (DEPLOY_HOME)")
    Deploy(settings, version, "deploy-version", ("dir", None, None), environ).run()
