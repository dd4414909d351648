"""The fleet controller: a second account on a fleet's primary that holds the
fleet key, so that nothing running as the deploy account (every app, every
setup, nginx's workers) can read it.

The deploy account asks the controller for what needs the key, over ssh to
the primary itself, with a key of its own (~/.ssh/uwsgi-deploy-controller)
that the controller's authorized_keys scopes to the `controller` role
(gate.py): a git push into the controller's copy of the app's repository
(~CONTROLLER/APP.git), `deploy-fleet APP COMMIT` and `deploy-status --fleet
APP`. No sudo, no setuid: sshd switches the user. install.yml sets it up:
the account, the key pair, ~/.ssh/uwsgi-deploy-controller.config (how to
reach it: host, port, user, key, its host key).

On the primary's deploy account (the pre-receive hook): request_deploy
pushes the commit to the controller, with the deploy branch as it stands
before this push (what the primary accepted last), asks it to deploy,
relays its lines, and refuses the push with the controller's reason. On the
controller: deploy runs the fleet deploy (fleet.fleet_deploy) from its own
copy; the branch there tells a fleet deploy whose journal was left behind,
but whose push the primary accepted (finished), from one it refused (rolled
back)."""
import os
import re
import subprocess
import sys
import threading
import time

from . import DeployError
from .checkout import git
from .layout import FLEET_REF, App
from .lock import DeployLock
from .settings import load
from .stages import LockTerms

HOST = "uwsgi-deploy-controller"      # the Host entry of the ssh config install.yml writes
CONFIG = os.path.join(".ssh", HOST + ".config")
TOOL = "deploy-fleet"
COMMIT = re.compile(r"[0-9a-f]{40}\Z")


def config_file(settings):
    return os.path.join(settings.home, CONFIG)


def configured(settings):
    """This deploy account reaches a controller (install.yml wrote its ssh config)."""
    return os.path.exists(config_file(settings))


# ssh to the controller, as the fleet's own ssh to its hosts (share/fleet/ansible.cfg):
# a connection never set up fails in 10 s, one that stops answering in ~15-20 s
SSH_BOUNDS = ("-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")


def ssh_argv(settings, *command):
    return ["ssh", "-F", config_file(settings), *SSH_BOUNDS, HOST, *command]


def relay(argv, environ, report, cwd, limit=None):
    """Run argv (an ssh to the controller), each output line to the pusher
    except the tool's own one-line error, which is returned as the reason.
    Its own session: a pusher who hangs up does not stop it half way. After
    limit seconds it is ended (by its PID); returns (exit status, reason,
    whether the limit ended it)."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=environ, cwd=cwd, start_new_session=True, text=True, errors="replace")
    ended = threading.Event()

    def end():
        ended.set()
        process.kill()
    timer = threading.Timer(limit, end) if limit else None
    if timer:
        timer.daemon = True
        timer.start()
    reason = None
    try:
        for line in process.stdout:
            line = line.rstrip("\n")
            if line.startswith(f"{TOOL}: "):
                reason = line[len(TOOL) + 2:]
            else:
                report.line(line)
        return process.wait(), reason, ended.is_set()
    finally:
        if timer:
            timer.cancel()


def request_deploy(settings, app, git_dir, commit, environ, report, deploy_ref=None, terms=LockTerms()):
    """On the primary, in the pre-receive hook: the fleet deploy of commit,
    pushed to deploy_ref, run by the controller, the fleet lock held on terms
    (a stages.LockTerms). Raises (the push is refused) unless it succeeded."""
    from .fleet import PLAYBOOK_MARGIN, deploy_limit, hangup_ignored, inventory_hosts, playbook_environ, timeouts
    name = f"{app.name}-{commit[:12]}"
    with DeployLock(app.fleet_lock_file, settings.lock_timeout, f"{name} (fleet push)", report.say,
                    waiting="waiting for another fleet deploy to finish") as lock, hangup_ignored():
        terms.check()
        repo = os.path.abspath(git_dir)
        env = playbook_environ(environ, repo)     # the pushed objects: reachable through the hook's GIT_ paths
        # the branch as this primary accepted it last: the controller's journal of a deploy cut short
        # is finished if the branch names its commit, else rolled back (fleet.recover)
        accepted = git(repo, "for-each-ref", "--format=%(objectname)", deploy_ref) if deploy_ref else ""
        refspecs = [f"{commit}:{FLEET_REF}"] + ([f"{accepted}:{deploy_ref}"] if accepted else [])
        # the hand-over is bounded as the fleet's push to a host is (DEPLOY_FLEET_TIMEOUT), and ssh's keep-alives
        handover = timeouts(settings)["step_timeout"] + PLAYBOOK_MARGIN
        env["GIT_SSH_COMMAND"] = f"ssh -F {config_file(settings)} {' '.join(SSH_BOUNDS)}"
        try:
            push = subprocess.run(["git", f"--git-dir={repo}", "push", "--quiet", "--force",
                                   f"{HOST}:{app.name}.git", *refspecs], env=env, cwd=settings.home,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=handover)
        except subprocess.TimeoutExpired:
            raise DeployError(f"fleet deploy of {name}: could not hand {commit[:12]} to the fleet controller: "
                              f"no answer within {handover} s") from None
        if push.returncode != 0:
            last = next((line for line in reversed(push.stderr.splitlines()) if line.strip()), "")
            raise DeployError(f"fleet deploy of {name}: could not hand {commit[:12]} to the fleet controller: "
                              f"{last.strip() or f'git push exited {push.returncode}'}")
        # the primary's DEPLOY_FLEET_BATCH (its ~/deploy.conf) goes with the request; the controller
        # must start within DEPLOY_LOCK_TIMEOUT (its wait for the fleet lock), and the whole deploy
        # end within what the fleet's own limits add up to, or the primary stops waiting
        batch = ["--batch", settings.fleet_batch] if settings.fleet_batch else []
        ref = ["--ref", deploy_ref] if deploy_ref else []
        limit = deploy_limit(settings, len(inventory_hosts(app.fleet_inventory)) or 1)
        start_by = ["--start-by", str(int(time.time() + settings.lock_timeout) + 1)]
        code, reason, ended = relay(ssh_argv(settings, TOOL, app.name, commit, *batch, *ref, *start_by), env,
                                    report, settings.home, limit)
        if ended:
            raise DeployError(f"fleet deploy of {name}: the fleet controller did not answer within {limit} s "
                              "(what the fleet's own limits add up to: docs/fleet-faults.md); refused; what it "
                              "did is in its journal, which the next push reads")
        if code == 255 and not reason:
            raise DeployError(f"fleet deploy of {name}: the connection to the fleet controller failed or was "
                              "lost (ssh exited with status 255); refused; what it did is in its journal, which "
                              "the next push reads")
        if code != 0:
            raise DeployError(reason or f"fleet deploy of {name}: the fleet controller exited with status {code}")
        terms.hand_over(lock)


def relay_status(settings, app_name, as_json):
    """deploy-status --fleet on a primary with a controller: the controller's
    answer, as it gives it (its exit status too)."""
    argv = ssh_argv(settings, "deploy-status", "--fleet", *([app_name] if app_name else []),
                    *(["--json"] if as_json else []))
    sys.stdout.flush()
    return subprocess.run(argv, stdin=subprocess.DEVNULL).returncode


def fleet_status(app_name=None, as_json=False, environ=None):
    """deploy-status --fleet: on a primary with a controller, the
    controller's answer (the fleet key is the controller's: it asks the
    hosts); elsewhere (on the controller itself) fleet.status."""
    settings = load(os.environ if environ is None else environ)
    if configured(settings):
        return relay_status(settings, app_name, as_json)
    from .fleet import status
    return status(app_name, as_json, environ)


def check_branch_ref(ref):
    """ref names a branch (refs/heads/NAME, a valid ref name), or raises."""
    if not ref.startswith("refs/heads/") or subprocess.run(
            ["git", "check-ref-format", ref], capture_output=True, stdin=subprocess.DEVNULL).returncode != 0:
        raise DeployError(f"{ref!r}: give the deploy branch as a full ref (refs/heads/NAME)")
    return ref


def deploy(app_name, commit, batch=None, ref=None, environ=None, start_by=None):
    """deploy-fleet APP COMMIT [--batch N] [--ref REF] [--start-by T], on the
    controller: the fleet deploy of a commit pushed into its ~/APP.git;
    batch: the primary's DEPLOY_FLEET_BATCH (checked as that setting is);
    ref: the branch it was pushed to, which the primary pushed here as it
    stood before (the journal records it: fleet.recover); start_by: the time
    (epoch seconds) after which the primary no longer waits for the deploy
    to start: a controller that gets the fleet lock later does nothing."""
    from .fleet import fleet_deploy
    from .report import Reporter
    environ = os.environ if environ is None else environ
    if batch:
        environ = dict(environ, DEPLOY_FLEET_BATCH=batch)
    settings = load(environ)
    app = App(settings, app_name)
    if not COMMIT.match(commit):
        raise DeployError(f"{commit!r}: give the full commit (40 hex digits)")
    if ref is not None:
        check_branch_ref(ref)
    if not app.has_fleet:
        raise DeployError(f"{app_name} has no fleet here: no {app.fleet_inventory}")
    found = subprocess.run(["git", f"--git-dir={app.repo}", "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True, stdin=subprocess.DEVNULL)
    if found.returncode != 0:
        raise DeployError(f"{commit[:12]} is not in {app.repo}: push it there first")
    fleet_deploy(settings, app, app.repo, commit, environ, Reporter(), deploy_ref=ref, start_by=start_by)
