"""A fleet: one app served by several hosts, each with the toolkit, its own
Emperor and nginx, deployed all or nothing by Ansible.

The fleet's primary is the host developers push to. Its ~/APP.inventory (an
Ansible inventory whose `fleet` group lists every host, the primary too)
turns its pre-receive hook into a fleet deploy: share/fleet/deploy.yml runs
the two phases of the per-host pipeline (phases.py) on every host over ssh,
and the push is accepted only if every host committed. share/fleet/status.yml
asks every host what it serves: the report after a fleet push, and
`deploy-status --fleet`.

Ansible is ansible-core from Debian (install.sh), run on the system Python
like the toolkit; share/fleet/ansible.cfg is its configuration.

Under faults (docs/fleet-faults.md): every step on a host is bounded
(DEPLOY_FLEET_TIMEOUT, DEPLOY_FLEET_PREPARE_TIMEOUT, ssh's keep-alives), the
playbook's leftovers are ended when it ends, and the deploy keeps a journal
(fleet_journal.py) that the next fleet deploy reads to undo what a dead
controller, or a host that could not be reached, left behind."""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from . import DeployError, fleet_journal
from .checkout import git
from .layout import FLEET_INVENTORY_SUFFIX, App
from .lock import DeployLock
from .paths import share
from .report import WARN
from .settings import load
from .stages import LockTerms

# the hook's GIT_ variables that name directories, relative to the repository
GIT_PATH_VARIABLES = ("GIT_DIR", "GIT_OBJECT_DIRECTORY", "GIT_QUARANTINE_PATH")
GIT_PATH_LISTS = ("GIT_ALTERNATE_OBJECT_DIRECTORIES",)
LIB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the callback's fleet_journal
# what deploy-status --json says of an app, as a host may say it (fleet_answers.py checks the playbooks' side)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*-[0-9a-f]{12}(?:\.[1-9][0-9]*)?\Z")


def ansible_playbook():
    path = shutil.which("ansible-playbook", path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin")
    if path is None:
        raise DeployError("ansible-playbook not found: a fleet needs ansible-core (install.sh installs it)")
    return path


def playbook_environ(environ, repo=None):
    """The playbook's environment: the fleet's ansible.cfg, output a line at a
    time, and the hook's GIT_ variables made absolute (inside a hook, the
    pushed objects are reachable only through them, and the push to each host
    runs from another directory)."""
    env = {k: v for k, v in environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=share("fleet", "ansible.cfg"), PYTHONUNBUFFERED="1",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONPATH=LIB_DIR)
    if repo is not None:
        for name in GIT_PATH_VARIABLES:
            if env.get(name):
                env[name] = os.path.join(repo, env[name])
        for name in GIT_PATH_LISTS:
            if env.get(name):
                env[name] = os.pathsep.join(os.path.join(repo, p) for p in env[name].split(os.pathsep))
    return env


def run_playbook(name, inventory, extra_vars, environ, on_line, cwd, on_start=None):
    """ansible-playbook share/fleet/NAME; each output line goes to on_line.
    It runs in a session of its own: a pusher who hangs up (SIGHUP) does not
    stop a fleet deploy half way, which would leave the fleet split. When it
    ends, whatever it left in that session is ended too (a command whose
    task timed out may still wait on a host): nothing of a deploy that
    ended acts on a host later."""
    argv = [ansible_playbook(), "-i", inventory, share("fleet", name), "-e", json.dumps(extra_vars)]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=environ, cwd=cwd, start_new_session=True, text=True, errors="replace")
    try:
        if on_start:
            on_start(process.pid)
        for line in process.stdout:
            on_line(line.rstrip("\n"))
        return process.wait()
    finally:
        end_session(process.pid)


def session_pids(session):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session and int(entry) != os.getpid():
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def end_session(session):
    """SIGKILL every process left in the session the playbook led (each by
    its PID: all were started by it)."""
    for pid in session_pids(session):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def hangup_ignored():
    saved = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, saved)


# -- what every host serves -------------------------------------------------------
@dataclass(frozen=True)
class HostStatus:
    host: str
    live: object        # APP-<rev>, None when nothing is live; unused when error
    answers_ping: bool
    error: object       # why the host did not answer, or None


class FleetStatus:
    def __init__(self, app, hosts):
        self.app, self.hosts = app, hosts     # [HostStatus], inventory order

    @property
    def versions(self):
        """{live version (or None): [hosts]} over the hosts that answered."""
        found = {}
        for host in self.hosts:
            if host.error is None:
                found.setdefault(host.live, []).append(host.host)
        return found

    @property
    def unanswered(self):
        return [h for h in self.hosts if h.error is not None]

    @property
    def split(self):
        """Hosts disagree: they serve different versions (or one serves
        nothing), or one could not tell what it serves."""
        return len(self.versions) != 1 or bool(self.unanswered)

    @property
    def live(self):
        """The version every host serves, or None."""
        versions = self.versions
        return next(iter(versions)) if len(versions) == 1 and not self.unanswered else None

    def verdict(self):
        if not self.hosts:
            return "no hosts"
        if not self.split:
            return f"every host serves {self.live or 'nothing'}"
        parts = [f"{version or 'nothing'} on {', '.join(hosts)}" for version, hosts in self.versions.items()]
        parts += [f"{h.host} did not answer" for h in self.unanswered]
        return "SPLIT: the hosts disagree: " + "; ".join(parts)

    def lines(self):
        width = max([len(h.host) for h in self.hosts] + [4])
        rows = []
        for h in self.hosts:
            if h.error is not None:
                rows.append(f"{h.host:<{width}}  ?  {h.error}")
            else:
                rows.append(f"{h.host:<{width}}  {h.live or 'nothing live'}"
                            + ("" if h.live is None else "  up" if h.answers_ping else "  down"))
        return rows

    def as_dict(self):
        return {"app": self.app, "split": self.split, "live": self.live, "verdict": self.verdict(),
                "hosts": [{"host": h.host, "live": h.live, "answers_ping": h.answers_ping, "error": h.error}
                          for h in self.hosts]}


def host_status(host, app_name, answer):
    """One host's answer (status.yml's record of it) as a HostStatus. What
    the host printed is data, checked here: anything but deploy-status's
    JSON, with a live version of the app-name pattern, is a host that
    answered garbage."""
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else None
        return HostStatus(host, None, False, printable(error) or "no answer")
    try:
        status = json.loads(str(answer.get("stdout") or ""))
        apps = [a for a in status.get("apps", []) if isinstance(a, dict) and a.get("name") == app_name]
    except (ValueError, AttributeError, TypeError):
        return HostStatus(host, None, False, "answered something that is not deploy-status's JSON")
    if not apps:
        return HostStatus(host, None, False, f"no app {app_name} there")
    live, ping = apps[0].get("live"), apps[0].get("answers_ping")
    if not (live is None or (isinstance(live, str) and RUN_NAME.match(live) and live.startswith(app_name + "-"))) \
            or not isinstance(ping, bool):
        return HostStatus(host, None, False, "answered a live version that is no version of the app")
    return HostStatus(host, live, ping, None)


def printable(text, limit=300):
    text = "".join(c if c.isprintable() else " " for c in str(text or "")).strip()
    return text[:limit]


def parse_answers(app_name, answers):
    return FleetStatus(app_name, [host_status(host, app_name, answer) for host, answer in answers.items()])


def collect_status(app, environ, cwd, on_line=None, settings=None):
    """Ask every host of app's fleet what it serves (share/fleet/status.yml)."""
    settings = settings or load(environ)
    with tempfile.TemporaryDirectory(prefix="uwsgi-deploy-fleet-") as directory:
        answers_file = os.path.join(directory, "status.json")
        output = []
        extra = {"app": app.name, "status_file": answers_file, "step_timeout": settings.fleet_timeout}
        code = run_playbook("status.yml", app.fleet_inventory, extra,
                            playbook_environ(environ), on_line or output.append, cwd)
        try:
            with open(answers_file) as stream:
                answers = json.load(stream)
        except (OSError, ValueError):
            last = next((line for line in reversed(output) if line.strip()), f"exit status {code}")
            raise DeployError(f"could not ask the hosts of {app.fleet_inventory}: {last.strip()}") from None
    return parse_answers(app.name, answers)


def report_status(status, report):
    for row in status.lines():
        report.say(row)
    (report.warn if status.split else report.say)(f"{status.app}: {status.verdict()}")


# -- a push to the primary -------------------------------------------------------------
def journal_path(app):
    return os.path.join(app.settings.run_dir, app.name + ".fleet.journal")


def timeouts(settings):
    """The playbooks' limits (docs/fleet-faults.md). step_timeout: a step
    that does little on its host (the push to it, an abort, deploy-status).
    switch_timeout: a step that switches the host's traffic (a commit, an
    undo), which a healthy but busy host may spend in its own bounded waits
    on top of that: its new run answering (DEPLOY_READY_TIMEOUT,
    DEPLOY_PROBE_TIMEOUT), the watch (DEPLOY_WATCH, and DEPLOY_WATCH_MAX while
    the old version's traffic says more requests are coming), the retire
    (DEPLOY_DRAIN_TIMEOUT); the fleet's hosts share these settings
    (install.yml). A step limit shorter than that timed out healthy commits
    that waited for traffic. prepare_timeout: the prepare, setup included.
    A host that stops answering fails sooner in any step (ssh's keep-alives)."""
    step = int(settings.fleet_timeout)
    waits = settings.ready_timeout + settings.probe_timeout + settings.watch + settings.watch_max \
        + settings.drain_timeout
    return {"step_timeout": step, "switch_timeout": step + int(waits),
            "prepare_timeout": int(settings.fleet_prepare_timeout)}


# seconds each of the three playbooks of a fleet deploy (undo, deploy, status)
# may take beyond its tasks' own limits: ansible's start, its connections, the
# work between tasks (deploy_limit)
PLAYBOOK_MARGIN = 20


def inventory_hosts(path):
    """The hosts of an inventory's `fleet` group, as install.yml writes it
    for the primary and its controller (INI, a host a line)."""
    hosts, section = [], None
    with open(path) as stream:
        for line in stream:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]").strip()
            elif section == "fleet":
                hosts.append(line.split()[0])
    return hosts


def commit_batches(batch, hosts):
    """How many batches DEPLOY_FLEET_BATCH makes of hosts (as Ansible's
    serial does: a percentage rounds down, at least one host a batch)."""
    if not batch:
        return 1
    size = int(hosts * int(batch[:-1]) / 100) if batch.endswith("%") else int(batch)
    return -(-hosts // max(1, size))


def deploy_limit(settings, hosts):
    """The longest a fleet deploy to `hosts` hosts may take by its own
    bounds (timeouts(), docs/fleet-faults.md), which the primary gives its
    controller before it stops waiting: the controller's wait for the fleet
    lock (DEPLOY_LOCK_TIMEOUT); the undo of a deploy cut short (recover: every
    host at once, a switch); the push and the prepare (every host at once);
    then the aborts of a failed prepare (one host after another, a step
    each) or the commits (a switch per batch) and the rollbacks and aborts
    of a failed commit (one host after another, a switch each); what every
    host serves (a step); and PLAYBOOK_MARGIN for each of the three
    playbooks."""
    limits = timeouts(settings)
    step, switch, prepare = limits["step_timeout"], limits["switch_timeout"], limits["prepare_timeout"]
    failed_prepare = hosts * step
    commit = commit_batches(settings.fleet_batch, hosts) * switch + hosts * switch
    return int(settings.lock_timeout) + switch + step + prepare + max(failed_prepare, commit) + step \
        + 3 * PLAYBOOK_MARGIN


def end_controller(record):
    """The playbook of a controller that died may still run (its hook was
    killed, not its session): end that session before undoing its work."""
    session = record.get("session")
    if not isinstance(session, int) or session <= 1:
        return
    try:
        with open(f"/proc/{session}/cmdline", "rb") as stream:
            ours = b"ansible-playbook" in stream.read() and os.getsid(session) == session
    except OSError:
        return
    if ours:
        end_session(session)


def recover(settings, app, git_dir, environ, report):
    """What a fleet deploy cut short left (its journal is still here): it
    is finished if the push was accepted after all (the branch names its
    commit), else undone on every host (deploy-version --undo: a candidate
    removed, a host that serves the commit back on the version before it).
    Raises if a host could not be reached: a deploy now would fail there too."""
    path = journal_path(app)
    record = fleet_journal.read(path)
    if record is None:
        return None
    report.warn(f"a fleet deploy was cut short (its controller died, or a host did not answer): "
                f"{fleet_journal.describe(record)}")
    commit = record.get("commit")
    if "unreadable" in record or not isinstance(commit, str) or not re.match(r"[0-9a-f]{40}\Z", commit):
        report.warn(f"its journal {path} names no commit: nothing to undo; removing it")
        fleet_journal.remove(path)
        return "dropped"
    end_controller(record)
    name = f"{app.name}-{commit[:12]}"
    ref = record.get("ref")
    if isinstance(ref, str) and ref.startswith("refs/heads/") and git_dir and \
            git(git_dir, "for-each-ref", "--format=%(objectname)", ref) == commit:
        report.stage(f"Finished: {ref} names {commit[:12]}, the push was accepted; nothing to undo")
        fleet_journal.remove(path)
        return "finished"
    report.stage(f"Rolling back the fleet deploy of {name} that was cut short, on every host")
    skip = fleet_journal.hosts_in(record, "live already")
    failures = []

    def relay(line):
        report.line(line)
        if line.startswith(WARN):
            failures.append(line[len(WARN):].strip())
    code = run_playbook("undo.yml", app.fleet_inventory, dict(timeouts(settings), app=app.name, commit=commit,
                                                                skip=skip),
                        playbook_environ(environ), relay, settings.home)
    if code != 0:
        reason = failures[-1] if failures else f"ansible-playbook exited with status {code}"
        raise DeployError(f"the fleet deploy of {name} that was cut short could not be rolled back on every "
                          f"host ({reason}); its journal {path} is kept for the next push")
    fleet_journal.remove(path)
    report.stage(f"Rolled back: no host keeps anything of {name}")
    return "rolled back"


def fleet_deploy(settings, app, git_dir, commit, environ, report, deploy_ref=None, terms=LockTerms(),
                 start_by=None):
    """Deploy commit to every host of app's fleet, or to none: the primary's
    pre-receive hook runs this instead of a local deploy, the fleet lock held
    on terms (a stages.LockTerms). Raises (the push is refused) unless every
    host committed. start_by: the time (epoch seconds) after which the
    primary no longer waits for it to start (its controller's limit,
    controller.request_deploy): past it, nothing is done."""
    name = f"{app.name}-{commit[:12]}"
    report.stage(f"Fleet deploy of {name} to the hosts of {app.fleet_inventory}")
    holder = f"{name} (fleet push)"
    lock_wait = settings.lock_timeout if start_by is None else max(0.0, min(settings.lock_timeout,
                                                                            start_by - time.time()))
    with DeployLock(app.fleet_lock_file, lock_wait, holder, report.say,
                    waiting="waiting for another fleet deploy to finish") as lock, hangup_ignored():
        if start_by is not None and time.time() > start_by:
            raise DeployError(f"fleet deploy of {name}: the primary stopped waiting for it to start at "
                              f"{time.strftime('%H:%M:%S', time.localtime(start_by))}; nothing done")
        terms.check()
        recover(settings, app, git_dir, environ, report)
        failures = []

        def relay(line):
            report.line(line)
            if line.startswith(WARN):
                failures.append(line[len(WARN):].strip())
        repo = os.path.abspath(git_dir)
        journal = journal_path(app)
        fleet_journal.write(journal, {"app": app.name, "commit": commit, "ref": deploy_ref, "phase": "push",
                                      "controller": os.getpid(), "started": time.time(), "hosts": {}})
        extra = dict(timeouts(settings), app=app.name, commit=commit, source_repo=repo, journal=journal)
        if settings.fleet_batch:
            extra["commit_batch"] = settings.fleet_batch
        code = run_playbook("deploy.yml", app.fleet_inventory, extra, playbook_environ(environ, repo),
                            relay, settings.home,
                            on_start=lambda pid: fleet_journal.update(journal, session=pid))
        report.stage("What every host serves now")
        try:
            status = collect_status(app, environ, settings.home, settings=settings)
            report_status(status, report)
        except DeployError as error:
            status = None
            report.warn(str(error))
        if status is not None and not status.split:
            fleet_journal.remove(journal)     # every host on one version: nothing left to undo
        else:
            fleet_journal.update(journal, phase="ended", verdict=status.verdict() if status else "unknown")
            report.warn(f"the fleet journal ({journal}) is kept: the next push undoes what this one left")
        if code != 0:
            reason = failures[-1] if failures else f"ansible-playbook exited with status {code}"
            raise DeployError(f"fleet deploy of {name} refused: {reason}")
        if status is not None and status.live != name:
            raise DeployError(f"fleet deploy of {name}: the playbook succeeded but {status.verdict()}")
        terms.hand_over(lock)
    report.stage(f"{name} is live on every host of the fleet")


# -- deploy-status --fleet ---------------------------------------------------------------
def fleet_apps(settings, app_name=None):
    if app_name is not None:
        app = App(settings, app_name)
        if not app.has_fleet:
            raise DeployError(f"{app_name} has no fleet here: no {app.fleet_inventory}")
        return [app]
    apps = []
    for entry in sorted(os.listdir(settings.home)):
        if entry.endswith(FLEET_INVENTORY_SUFFIX):
            try:
                apps.append(App(settings, entry[:-len(FLEET_INVENTORY_SUFFIX)]))
            except DeployError:
                continue
    if not apps:
        raise DeployError(f"no fleet here: no APP.inventory in {settings.home}")
    return apps


def journal_state(app):
    """(state, description) of a fleet deploy app's journal records, or
    (None, None): "in progress" while a controller holds the fleet lock,
    else "interrupted" (the next push undoes it)."""
    record = fleet_journal.read(journal_path(app))
    if record is None:
        return None, None
    try:
        with DeployLock(app.fleet_lock_file, 0, "deploy-status --fleet", shared=True):
            state = "interrupted"
    except DeployError:
        state = "in progress"
    return state, fleet_journal.describe(record)


def status(app_name=None, as_json=False, environ=None, out=None):
    """deploy-status --fleet: each host's live version, per app with an
    inventory here, and a fleet deploy cut short; exit status 1 when the
    hosts of an app disagree, or one was cut short."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    settings = load(environ)
    apps = fleet_apps(settings, app_name)
    results = [collect_status(app, environ, settings.home, settings=settings) for app in apps]
    journals = [journal_state(app) for app in apps]
    if as_json:
        fleets = [dict(r.as_dict(), deploy={"state": state, "what": what} if state else None)
                  for r, (state, what) in zip(results, journals)]
        out.write(json.dumps({"fleets": fleets}, indent=2) + "\n")
    else:
        for result, (state, what) in zip(results, journals):
            out.write(f"{result.app} (fleet of {len(result.hosts)})\n")
            for row in result.lines():
                out.write(f"  {row}\n")
            out.write(f"  {result.verdict()}\n")
            if state == "interrupted":
                out.write(f"  INTERRUPTED fleet deploy: {what}; the next push to this host undoes it\n")
            elif state:
                out.write(f"  fleet deploy in progress: {what}\n")
    return 1 if any(r.split for r in results) or any(s == "interrupted" for s, _ in journals) else 0
