"""Getting a version onto disk from git, and finding its deploy files.

Git runs through `sh`. Inside a pre-receive hook the pushed objects are only
reachable through the hook's GIT_* variables, so git sees them; setup and
the app never do (clean_environ)."""
import os
import shutil

from . import DeployError

ZERO_COMMIT = "0" * 40


def clean_environ(environ):
    """environ without the hook's GIT_* variables."""
    return {k: v for k, v in environ.items() if not k.startswith("GIT_")}


def _sh():
    """The sh module, imported only when a command runs: its import costs
    tens of milliseconds that a tool running no command should not pay."""
    import sh
    return sh


def _last_line(err):
    if isinstance(err, _sh().ErrorReturnCode):
        lines = err.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit status {err.exit_code}"
    return str(err)


def git(git_dir, *args):
    sh = _sh()
    try:
        return str(sh.git("--git-dir", git_dir, *args)).strip()
    except sh.ErrorReturnCode as err:
        raise DeployError(f"git {args[0]}: {_last_line(err)}") from None


# Both deploy when nothing narrows it, as on Heroku: git's own default branch
# is still master on many systems, and deploy-init's is main.
DEFAULT_BRANCHES = ("refs/heads/main", "refs/heads/master")


def deploy_branch_refs(git_dir, configured):
    """The refs that deploy, first one preferred: DEPLOY_BRANCH when set; else
    the branch the repository's HEAD names, with main and master counting as
    one (both deploy) when HEAD names either."""
    if configured:
        return [configured if configured.startswith("refs/") else "refs/heads/" + configured]
    head = git(git_dir, "symbolic-ref", "HEAD")
    if head in DEFAULT_BRANCHES:
        return [head] + [ref for ref in DEFAULT_BRANCHES if ref != head]
    return [head]


def branch_names(refs):
    """'main or master', for messages."""
    return " or ".join(ref.removeprefix("refs/heads/") for ref in refs)


def export_tree(git_dir, commit, version):
    """Write commit's tree (no .git) to version's workdir, all or nothing:
    extracted into a hidden sibling, then renamed into place. Modes follow the
    umask (tar run as root would otherwise keep git's world-readable ones)."""
    sh = _sh()
    destination, temporary, archive = version.workdir, version.checkout_temporary(), version.checkout_archive()
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    try:
        git(git_dir, "archive", "--format=tar", "--output", archive, commit)
        sh.tar("-x", "--no-same-permissions", "-f", archive, "-C", temporary)
    except (DeployError, sh.ErrorReturnCode) as err:
        shutil.rmtree(temporary, ignore_errors=True)
        raise DeployError(f"cannot export {commit[:12]}: {_last_line(err)}") from None
    finally:
        if os.path.exists(archive):
            os.unlink(archive)
    shutil.rmtree(destination, ignore_errors=True)
    os.rename(temporary, destination)


def inside(root, path, what):
    """path, after following links, must stay within root."""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise DeployError(f"{what} leads outside the checkout ({os.path.relpath(path, root)} -> {real})")
    return real


def deploy_dir(workdir):
    """Where environment.sh, setup and uwsgi.ini live: the checkout, or the
    sub-directory a `.deploy` symlink names."""
    link = os.path.join(workdir, ".deploy")
    if not os.path.lexists(link):
        return workdir
    target = inside(workdir, link, ".deploy")
    if not os.path.isdir(target):
        raise DeployError(f".deploy does not point to a directory ({os.readlink(link)})")
    return target
