"""The pre-receive hook: deploy the deploy branch's new commit, let other refs
through, refuse deleting the deploy branch."""
import os

from . import DeployError
from .checkout import ZERO_COMMIT, deploy_branch_ref, git
from .layout import app_from_repo_dir
from .pipeline import Deploy, Reporter
from .settings import load


def commit_to_deploy(lines, deploy_ref):
    """(old, new) commits of deploy_ref among git's `old new ref` lines, or None."""
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
        target = (_old, new)
    return target


def ref_value(git_dir, ref):
    return git(git_dir, "for-each-ref", "--format=%(objectname)", ref) or ZERO_COMMIT


def ref_unchanged(git_dir, ref, old):
    """Raise if ref no longer is at old: another push updated it while this one
    waited for the deploy lock, and git would refuse to update it after we
    deployed (the live version and the branch would disagree)."""
    def check():
        current = ref_value(git_dir, ref)
        if current != old:
            raise DeployError(f"{ref} moved to {current[:12]} while this push waited "
                              "(another push deployed it); fetch, then push again")
    return check


def pre_receive(lines, environ):
    git_dir = os.path.abspath(environ.get("GIT_DIR", "."))
    settings = load(environ)
    # ~/APP.git lives in the deploy root: unless DEPLOY_HOME says otherwise, the
    # repository's directory is home, whoever pushes (a local push keeps the
    # pusher's HOME)
    parent = os.path.dirname(git_dir)
    if settings.sources["home"] == "default" and settings.home != parent:
        settings = load(dict(environ, HOME=parent))
    app = app_from_repo_dir(settings, git_dir)
    deploy_ref = deploy_branch_ref(git_dir, settings.branch)
    update = commit_to_deploy(lines, deploy_ref)
    report = Reporter()
    if update is None:
        report.line(f"-----> nothing to deploy: {deploy_ref} was not pushed")
        return
    old, commit = update
    Deploy(settings, app.version(commit), "push", ("git", git_dir, commit), environ, report,
           precondition=ref_unchanged(git_dir, deploy_ref, old),
           hold_lock_until=lambda: ref_value(git_dir, deploy_ref) != old).run()
