"""The pre-receive hook: deploy the deploy branch's new commit (main or
master unless DEPLOY_BRANCH says otherwise), store other refs and say so for a
branch that deploys nothing, refuse deleting a deploy branch. On a fleet's
primary (~/APP.inventory exists) the deploy is a fleet deploy (fleet.py)."""
import os

from . import DeployError, controller
from .canary import canary_seconds, push_options
from .checkout import ZERO_COMMIT, branch_names, deploy_branch_refs, git
from .layout import FLEET_REF, app_from_repo_dir
from .pipeline import Deploy
from .report import Reporter
from .settings import load
from .stages import LockTerms, PushedCommit, Request


def parse_updates(lines):
    """git's `old new ref` lines as (old, new, ref) tuples."""
    updates = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            raise DeployError(f"unexpected input from git: {line.strip()!r}")
        updates.append(tuple(parts))
    return updates


def commit_to_deploy(updates, deploy_refs):
    """(ref, old, new) of the deploy branch pushed, or None. When several deploy
    branches are pushed at once, the first of deploy_refs deploys."""
    pushed = {}
    for old, new, ref in updates:
        if ref not in deploy_refs:
            continue
        if new == ZERO_COMMIT:
            raise DeployError(f"refusing to delete {ref}: it is the deploy branch")
        pushed[ref] = (ref, old, new)
    return next((pushed[ref] for ref in deploy_refs if ref in pushed), None)


def warn_undeployed_branches(updates, deploy_refs, report):
    """A pushed branch that does not deploy is stored, and the pusher is told,
    on a line they cannot miss, which branches deploy and how to deploy this one."""
    warned = False
    for _old, new, ref in updates:
        if ref.startswith("refs/heads/") and ref not in deploy_refs and new != ZERO_COMMIT:
            branch = ref.removeprefix("refs/heads/")
            report.warn(f"branch {branch} was pushed but deploys nothing: only {branch_names(deploy_refs)} "
                        f"deploys; to deploy it: git push deploy HEAD:{branch_names(deploy_refs[:1])}")
            warned = True
    return warned


def stored_for_fleet(updates, app, report):
    """A fleet deploy pushes the commit under FLEET_REF first: stored here,
    deployed by the phases (deploy-version --prepare) the playbook runs next."""
    stored = [new for _old, new, ref in updates if ref == FLEET_REF and new != ZERO_COMMIT]
    for commit in stored:
        report.stage(f"stored {commit[:12]} for a fleet deploy ({FLEET_REF}; "
                    f"deploy-version --prepare {app.name} {commit[:12]} deploys it)")
    return bool(stored)


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


def pre_receive(lines, environ, on_stage=None):
    """The hook: git's update lines and environment; on_stage goes to Deploy."""
    git_dir = os.path.abspath(environ.get("GIT_DIR", "."))
    settings = load(environ)
    # ~/APP.git lives in the deploy root: unless DEPLOY_HOME says otherwise, the
    # repository's directory is home, whoever pushes (a local push keeps the
    # pusher's HOME), for the deploy and for what setup runs (deploy-venv)
    parent = os.path.dirname(git_dir)
    if settings.sources["home"] == "default" and settings.home != parent:
        environ = dict(environ, HOME=parent)
        settings = load(environ)
    app = app_from_repo_dir(settings, git_dir)
    deploy_refs = deploy_branch_refs(git_dir, settings.branch)
    updates = parse_updates(lines)
    update = commit_to_deploy(updates, deploy_refs)
    report = Reporter()
    warned = warn_undeployed_branches(updates, deploy_refs, report)
    if update is None:
        if stored_for_fleet(updates, app, report):
            return
        if not warned:
            report.stage(f"nothing to deploy: {branch_names(deploy_refs)} was not pushed")
        return
    deploy_ref, old, commit = update
    # the branch must still be where this push found it, and the lock is held until git moved it
    terms = LockTerms(precondition=ref_unchanged(git_dir, deploy_ref, old),
                      hold_lock_until=lambda: ref_value(git_dir, deploy_ref) != old)
    if app.has_fleet and controller.configured(settings):    # the fleet key is the controller's
        controller.request_deploy(settings, app, git_dir, commit, environ, report, deploy_ref, terms)
        return
    if app.has_fleet:
        from .fleet import fleet_deploy   # only a fleet's primary pays for its import
        fleet_deploy(settings, app, git_dir, commit, environ, report, deploy_ref, terms)
        return
    request = Request.asked(settings, app.version(commit), "push", PushedCommit(git_dir, commit), environ)
    Deploy(request, report, terms, on_stage, canary_seconds(settings, push_options(environ))).run()
