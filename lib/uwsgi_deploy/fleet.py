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
like the toolkit; share/fleet/ansible.cfg is its configuration."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from . import DeployError, controller
from .layout import FLEET_INVENTORY_SUFFIX, App
from .lock import LOCK_HANDOVER_TIMEOUT, DeployLock
from .paths import share
from .report import WARN
from .settings import load

# the hook's GIT_ variables that name directories, relative to the repository
GIT_PATH_VARIABLES = ("GIT_DIR", "GIT_OBJECT_DIRECTORY", "GIT_QUARANTINE_PATH")
GIT_PATH_LISTS = ("GIT_ALTERNATE_OBJECT_DIRECTORIES",)


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
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if repo is not None:
        for name in GIT_PATH_VARIABLES:
            if env.get(name):
                env[name] = os.path.join(repo, env[name])
        for name in GIT_PATH_LISTS:
            if env.get(name):
                env[name] = os.pathsep.join(os.path.join(repo, p) for p in env[name].split(os.pathsep))
    return env


def run_playbook(name, inventory, extra_vars, environ, on_line, cwd):
    """ansible-playbook share/fleet/NAME; each output line goes to on_line.
    It runs in a session of its own: a pusher who hangs up (SIGHUP) does not
    stop a fleet deploy half way, which would leave the fleet split."""
    argv = [ansible_playbook(), "-i", inventory, share("fleet", name), "-e", json.dumps(extra_vars)]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=environ, cwd=cwd, start_new_session=True, text=True, errors="replace")
    for line in process.stdout:
        on_line(line.rstrip("\n"))
    return process.wait()


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


def parse_answers(app_name, answers):
    hosts = []
    for host, answer in answers.items():
        if not answer.get("ok"):
            hosts.append(HostStatus(host, None, False, answer.get("error") or "no answer"))
            continue
        apps = [a for a in (answer.get("status") or {}).get("apps", []) if a.get("name") == app_name]
        if not apps:
            hosts.append(HostStatus(host, None, False, f"no app {app_name} there"))
            continue
        hosts.append(HostStatus(host, apps[0].get("live"), bool(apps[0].get("answers_ping")), None))
    return FleetStatus(app_name, hosts)


def collect_status(app, environ, cwd, on_line=None):
    """Ask every host of app's fleet what it serves (share/fleet/status.yml)."""
    with tempfile.TemporaryDirectory(prefix="uwsgi-deploy-fleet-") as directory:
        answers_file = os.path.join(directory, "status.json")
        output = []
        code = run_playbook("status.yml", app.fleet_inventory, {"app": app.name, "status_file": answers_file},
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
def fleet_deploy(settings, app, git_dir, commit, environ, report, precondition=None, hold_lock_until=None):
    """Deploy commit to every host of app's fleet, or to none: the primary's
    pre-receive hook runs this instead of a local deploy. Raises (the push is
    refused) unless every host committed."""
    name = f"{app.name}-{commit[:12]}"
    report.stage(f"Fleet deploy of {name} to the hosts of {app.fleet_inventory}")
    holder = f"{name} (fleet push)"
    with DeployLock(app.fleet_lock_file, settings.lock_timeout, holder, report.say,
                    waiting="waiting for another fleet deploy to finish") as lock, hangup_ignored():
        if precondition:
            precondition()
        failures = []

        def relay(line):
            report.line(line)
            if line.startswith(WARN):
                failures.append(line[len(WARN):].strip())
        repo = os.path.abspath(git_dir)
        extra = {"app": app.name, "commit": commit, "source_repo": repo}
        if settings.fleet_batch:
            extra["commit_batch"] = settings.fleet_batch
        code = run_playbook("deploy.yml", app.fleet_inventory, extra, playbook_environ(environ, repo),
                            relay, settings.home)
        report.stage("What every host serves now")
        try:
            status = collect_status(app, environ, settings.home)
            report_status(status, report)
        except DeployError as error:
            status = None
            report.warn(str(error))
        if code != 0:
            reason = failures[-1] if failures else f"ansible-playbook exited with status {code}"
            raise DeployError(f"fleet deploy of {name} refused: {reason}")
        if status is not None and status.live != name:
            raise DeployError(f"fleet deploy of {name}: the playbook succeeded but {status.verdict()}")
        if hold_lock_until:
            lock.keep_until(hold_lock_until, LOCK_HANDOVER_TIMEOUT)
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


def status(app_name=None, as_json=False, environ=None, out=None):
    """deploy-status --fleet: each host's live version, per app with an
    inventory here; exit status 1 when the hosts of an app disagree."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    settings = load(environ)
    if controller.configured(settings):      # the fleet key is the controller's: it asks the hosts
        return controller.relay_status(settings, app_name, as_json)
    results = [collect_status(app, environ, settings.home) for app in fleet_apps(settings, app_name)]
    if as_json:
        out.write(json.dumps({"fleets": [r.as_dict() for r in results]}, indent=2) + "\n")
    else:
        for result in results:
            out.write(f"{result.app} (fleet of {len(result.hosts)})\n")
            for row in result.lines():
                out.write(f"  {row}\n")
            out.write(f"  {result.verdict()}\n")
    return 1 if any(r.split for r in results) else 0

