"""The pre-receive hook: deploy the deploy branch's new commit, let other refs
through, refuse deleting the deploy branch."""
import os

from . import DeployError
from .checkout import ZERO_COMMIT, deploy_branch_ref
from .layout import app_from_repo_dir
from .pipeline import Deploy, Reporter
from .settings import load


def commit_to_deploy(lines, deploy_ref):
    """The new commit of deploy_ref among git's `old new ref` lines, or None."""
    target = None
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            raise DeployError(f"unexpected input from git: {line.strip()!r}")
        _old, new, ref = parts
        if ref != deploy_ref:
            continue
        if new == ZERO_COMMIT:
            raise DeployError(f"refusing to delete {ref}: it is the deploy branch")
        target = new
    return target


def pre_receive(lines, environ):
    git_dir = os.path.abspath(environ.get("GIT_DIR", "."))
    settings = load(environ)
    app = app_from_repo_dir(settings, git_dir)
    deploy_ref = deploy_branch_ref(git_dir, settings.branch)
    commit = commit_to_deploy(lines, deploy_ref)
    report = Reporter()
    if commit is None:
        report.line(f"-----> nothing to deploy: {deploy_ref} was not pushed")
        return
    Deploy(settings, app.version(commit), "push", ("git", git_dir, commit), environ, report).run()
