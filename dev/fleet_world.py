"""A fleet on one machine, for the fleet tests, `make fleet-demo` and
bench/fleet: N deploy accounts stand in for N hosts. Each has its own home,
sshd (its own port and host key), Emperor (running as the account), nginx on
its own port, and login shell git-shell; an administrator key reaches each
as root, as an admin reaches a real host. The toolkit is installed on every
"host" by share/fleet/install.yml over that ssh (it runs install.sh there),
which also makes host 1 the primary: a controller account (controller_user,
its home controller_home in this world's directory) gets the fleet key,
every host's known_hosts entry and the inventory, and host 1's deploy
account a key to ask it for a fleet deploy (docs/keys.md). The
developer pushes to host 1 with a key of their own, as in production.

Needs root (accounts, sshd). Everything it starts is stopped by PID."""
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import requests

from load import LoadLoop, SlowRequests
from accounts import create_deploy_account, remove_account, start_sshd
import sandbox_server as base
from sandbox_server import CHECKOUT as ROOT, TEST_INI, wait_until, write
from uwsgi_deploy.stats import read_stats
from uwsgi_deploy.layout import App

APP = "app"
# The test app, with two faults a commit can switch on for one host (named in
# the commit's environment.sh; each host's ~/environment.sh says its name):
# BREAK_SETUP_ON=hN makes setup fail there; SLOW_SETUP_ON=hN with
# SLOW_SETUP_SECONDS=S makes it take S seconds there, printing nothing; CRASH_ON=hN makes the version's
# workers die once it is live there (from its third /ping on: the probe and
# the commit's check come first, then the watch's).
FLEET_APP = '''import os, time

VERSION = "{version}"
HERE = os.path.dirname(os.path.abspath(__file__))
CRASHES = bool(os.environ.get("CRASH_ON")) and os.environ.get("CRASH_ON") == os.environ.get("HOST_NAME")


def pings():
    fd = os.open(os.path.join(HERE, "pings"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b".")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/ping":
        if CRASHES and pings() > 2:
            os._exit(1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or 2))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''
FLEET_SETUP = """#!/bin/sh
if [ -n "$SLOW_SETUP_ON" ] && [ "$SLOW_SETUP_ON" = "$HOST_NAME" ]; then
    sleep "$SLOW_SETUP_SECONDS"    # a long dependency build, silent all along
fi
if [ -n "$BREAK_SETUP_ON" ] && [ "$BREAK_SETUP_ON" = "$HOST_NAME" ]; then
    echo "setup breaks on $HOST_NAME, as this commit asks" >&2
    exit 3
fi
echo "setup ran on $HOST_NAME"
"""
PLAYBOOK = os.path.join(ROOT, "share", "fleet")
# the requirements' wheels, fetched once (`make wheels`, which make test,
# fleet-demo and bench run first): install.yml ships them to every host, so
# a world's hosts do not each ask PyPI (a third of a world's CPU went to pip
# reading its index); without them, each host's pip asks PyPI, as a user's does
WHEELS = os.path.join(ROOT, "build", "wheels")
WORKERS = 4   # processes in the fleet app's uwsgi.ini
# the request loop: a request per client every PACE s. Unpaced, the loops of three
# hosts took a core away from the hosts they watch (160,000 requests in one test);
# at 20 ms, the four worlds' loops still cost make test ~90 CPU-s of its ~1,200.
# At 40 ms two clients send a host 50 a second: 150 in a 3-s watch, three times
# the DEPLOY_WATCH_MIN_REQUESTS it judges a version's traffic on.
PACE = 0.04


def run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=kwargs.pop("timeout", 600), **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


class Host:
    def __init__(self, name, box, account, ssh):
        self.name, self.box, self.account, self.ssh_command = name, box, account, ssh
        self.user, self.home = account.pw_name, box.home

    @property
    def app(self):
        return App(self.box.settings, APP)

    @property
    def bin_dir(self):
        return os.path.join(self.home, "bin")

    @property
    def url(self):
        return self.box.url("/")

    def served(self):
        """What the app answers through this host's nginx."""
        return requests.get(self.url, timeout=10).text

    def live(self):
        version = self.app.live_version()
        return version.run_name if version else None

    def vassals(self):
        """The app's vassal inis, and what the Emperor runs of it."""
        stats = read_stats(self.box.settings.emperor_stats) or {}
        running = sorted(v["id"] for v in stats.get("vassals", []) if v["id"].startswith(APP + "-"))
        inis = sorted(n for n in os.listdir(self.box.settings.vassals_dir) if n.startswith(APP + "-"))
        return inis, running

    def prepared_records(self):
        return sorted(n for n in os.listdir(self.box.settings.run_dir) if n.endswith(".prepared"))

    def sshd_pids(self):
        """This host's sshd: the listener and every sshd process under it
        (each connection's monitor and session), not what those run."""
        with open(os.path.join(self.box.root, "keys", "sshd.pid")) as stream:
            listener = int(stream.read())
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stream:
                        parent = int(stream.read().rsplit(")", 1)[1].split()[1])
                    executable = os.readlink(f"/proc/{entry}/exe")
                except OSError:
                    continue
                if executable == "/usr/sbin/sshd":
                    children.setdefault(parent, []).append(int(entry))
        pids, frontier = [listener], [listener]
        while frontier:
            for child in children.get(frontier.pop(), []):
                pids.append(child)
                frontier.append(child)
        return pids

    def cut_off(self):
        """A partition, as the primary sees it: this host's sshd (listener and
        connections) stops (SIGSTOP, by PID): a connection open to it, or a new
        one, gets no answer, while the host's own processes (a phase it was
        running, its Emperor, nginx) go on. heal() ends it."""
        self.stopped = self.sshd_pids()
        for pid in self.stopped:
            os.kill(pid, signal.SIGSTOP)
        return self.stopped

    def heal(self):
        """The host comes back: its sshd processes continue (SIGCONT)."""
        for pid in getattr(self, "stopped", []):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped = []

    def ssh(self, command, timeout=300):
        """`ssh ACCOUNT@127.0.0.1 COMMAND` with the developer's key."""
        argv = self.ssh_command.split() + [f"{self.user}@127.0.0.1", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class FleetWorld:
    """Build with build(); stop() ends every process it started and removes
    the accounts and the directory."""

    def __init__(self, size=3, detach=False, say=None):
        self.size, self.detach = size, detach
        self.say = say or (lambda text: None)
        self.root = tempfile.mkdtemp(prefix="udf-", dir="/tmp")
        os.chmod(self.root, 0o755)        # the accounts reach their homes through it
        self.hosts = []
        self.admin = os.path.join(self.root, "admin")
        self.controller_user = None     # the primary's fleet controller account (install.yml makes it)
        self.controller_home = os.path.join(self.root, "controller")
        self.source = os.path.join(self.root, "src")

    @property
    def primary(self):
        return self.hosts[0]

    @property
    def inventory(self):
        return os.path.join(self.root, "fleet.ini")

    # -- building it ----------------------------------------------------------------
    def build(self):
        """Every host made, installed (the first one the primary), running."""
        try:
            self.create_hosts()
            self.say(f"installing the toolkit on {', '.join(h.name for h in self.hosts)} "
                     "(share/fleet/install.yml, as root over ssh)")
            self.install(self.hosts, primary=True)
            self.start_servers(self.hosts)
            return self
        except BaseException:
            self.stop()
            raise

    def create_hosts(self):
        """The accounts and their sshd, nothing installed yet."""
        os.makedirs(self.admin, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet admin", "-f",
             os.path.join(self.admin, "key")])
        with open(os.path.join(self.admin, "key.pub")) as stream:
            admin_key = stream.read()
        for number in range(1, self.size + 1):
            box = base.Sandbox(os.path.join(self.root, f"h{number}"), detach=self.detach)
            account = create_deploy_account(box)
            if number == 1:     # the primary: install.yml makes its controller account, which logs in over ssh
                self.controller_user = account.pw_name + "f"
            also = [self.controller_user] if number == 1 else []
            self.hosts.append(Host(f"h{number}", box, account, start_sshd(box, account, admin_key, also)))

    def start_servers(self, hosts):
        """Each host's Emperor (as its deploy account) and nginx; each host's
        ~/environment.sh names it (HOST_NAME), as a real host's might."""
        for host in hosts:
            write(os.path.join(host.home, "environment.sh"), f"HOST_NAME={host.name}\n", 0o600)
            shutil.chown(os.path.join(host.home, "environment.sh"), host.user, host.user)
            host.box.start_emperor(bin_dir=host.bin_dir, user=host.user)
            host.box.start_nginx([APP])
        self.say("running an Emperor and nginx: "
                 + ", ".join(f"{h.name} (nginx on port {h.box.nginx_port})" for h in hosts))

    def write_inventory(self, hosts, primary):
        """The administrator's inventory: hosts, the first the primary (if
        primary), each reached as root with the admin key."""
        lines = ["[fleet]"]
        for host in hosts:
            lines.append(f"{host.name} ansible_host=127.0.0.1 ansible_port={host.box.ssh_port} "
                         f"deploy_user={host.user} toolkit_dir={host.box.root}/toolkit "
                         # this host's sshd has its own host key, not /etc/ssh's
                         f"host_key_files={host.box.root}/keys/host.pub")
        if primary:
            lines += ["", "[primary]", f"{hosts[0].name} fleet_user={self.controller_user} "
                      f"fleet_home={self.controller_home}"]
        lines += ["", "[fleet:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={self.admin}/key",
                  "ansible_python_interpreter=/usr/bin/python3"]
        write(self.inventory, "\n".join(lines) + "\n")

    def install_command(self):
        extra = {"apps": [APP]}
        if os.path.isdir(WHEELS):
            extra["wheels"] = WHEELS
        return ["ansible-playbook", "-i", self.inventory, os.path.join(PLAYBOOK, "install.yml"),
                "-e", json.dumps(extra)]

    def admin_environ(self):
        """The administrator's Ansible: its own home and temporary files, and
        ssh that records no host key in root's known_hosts. One connection
        per host serves every task (ControlPersist; install() closes them),
        each module sent down it (pipelining): a task costs one round trip,
        not five ssh logins."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DEPLOY_", "GIT_"))}
        environ.update(ANSIBLE_CONFIG=os.path.join(PLAYBOOK, "ansible.cfg"),
                       ANSIBLE_HOME=os.path.join(self.admin, "ansible"),
                       ANSIBLE_LOCAL_TEMP=os.path.join(self.admin, "tmp"),
                       ANSIBLE_REMOTE_TEMP=os.path.join(self.admin, "remote-tmp"),
                       ANSIBLE_PIPELINING="True",
                       ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=20s -o StrictHostKeyChecking=no "
                                        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                       TMPDIR=self.admin)
        return environ

    def install(self, hosts, primary):
        """share/fleet/install.yml, as the administrator, on hosts."""
        self.write_inventory(hosts, primary)
        # in a session of its own, as an administrator's terminal runs it: with
        # the kernel's autogroups, Ansible's side of the install then gets its
        # share of the CPU beside every process of the session that started it
        # (under make test: every worker's tests, Emperors and request loops)
        result = subprocess.run(self.install_command(), capture_output=True, text=True, timeout=1800,
                                env=self.admin_environ(), stdin=subprocess.DEVNULL, start_new_session=True)
        self.install_output = result.stdout + result.stderr
        self.close_connections()
        if result.returncode != 0:
            raise RuntimeError(f"install.yml failed:\n{self.install_output}")
        return self.install_output

    def close_connections(self):
        """The administrator's ssh connections (ControlPersist masters) end
        now, each asked through its own socket, not when they time out."""
        sockets = os.path.join(self.admin, "ansible", "cp")
        for name in os.listdir(sockets) if os.path.isdir(sockets) else []:
            subprocess.run(["ssh", "-o", f"ControlPath={os.path.join(sockets, name)}", "-O", "exit", "host"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)

    def set_setting(self, name, value, controller=True):
        """NAME=value in the primary's ~/deploy.conf and (unless not
        controller) in its controller's (which runs the fleet deploy), their
        other lines kept (install.yml writes DEPLOY_SINGLETONS there); None:
        the line removed."""
        accounts = [(self.primary.home, self.primary.user)]
        if controller:
            accounts.append((self.controller_home, self.controller_user))
        for home, user in accounts:
            if user is None:
                continue
            path = os.path.join(home, "deploy.conf")
            try:
                with open(path) as stream:
                    lines = [line for line in stream.read().splitlines() if not line.startswith(name + "=")]
            except FileNotFoundError:
                lines = []
            if value is not None:
                lines.append(f"{name}={value}")
            write(path, "".join(line + "\n" for line in lines), 0o600)
            shutil.chown(path, user, user)

    # -- the developer's side -----------------------------------------------------------
    def git(self, *args, check=True, env=None):
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DEPLOY_"))}
        result = subprocess.run(["git", "-C", self.source, "-c", "user.name=dev", "-c", "user.email=dev@localhost",
                                 *args], capture_output=True, text=True, timeout=900,
                                env=dict(environ, **(env or {})), stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"git {args[0]}: {result.stderr}")
        return result

    def commit(self, version, environment=""):
        """A commit of the fleet app saying `version`, with the commit's own
        environment.sh (BREAK_SETUP_ON=hN, CRASH_ON=hN); returns the commit."""
        if not os.path.isdir(self.source):
            subprocess.run(["git", "init", "-q", "-b", "main", self.source], check=True)
        write(os.path.join(self.source, "app.py"), FLEET_APP.format(version=version))
        write(os.path.join(self.source, "uwsgi.ini"), TEST_INI)
        write(os.path.join(self.source, "setup"), FLEET_SETUP, 0o755)
        write(os.path.join(self.source, "environment.sh"), environment)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", f"version {version}")
        return self.git("rev-parse", "HEAD").stdout.strip()

    def push(self, host=None):
        """git push to the primary (or to host), as the developer; the
        CompletedProcess."""
        host = host or self.primary
        return self.git("push", "--force", f"{host.user}@127.0.0.1:{APP}.git", "main",
                        check=False, env={"GIT_SSH_COMMAND": host.ssh_command})

    def lives(self):
        return {host.name: host.live() for host in self.hosts}

    # -- ending it -------------------------------------------------------------------------
    def stop(self):
        # the hosts' servers stop at once (an Emperor takes seconds to bury its vassals)
        stopping = [threading.Thread(target=host.box.stop, kwargs={"remove": False}) for host in self.hosts]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        accounts = [host.account for host in self.hosts]
        if self.controller_user and account_exists(self.controller_user):
            accounts.append(pwd.getpwnam(self.controller_user))
        stop_account_processes({account.pw_uid for account in accounts})   # every account's at once
        for account in accounts:
            remove_account(account)
        shutil.rmtree(self.root, ignore_errors=True)


# -- what the fleet tests share ----------------------------------------------------------
class FleetLoad:
    """On every host's nginx: a request loop (two clients, each a request
    every PACE s: a gap in service longer than that is seen), and slow
    requests that fill every worker at times; each counts what its clients
    saw."""

    def __init__(self, fleet, order, clients=2, slow=True, pace=PACE):
        """order: the versions' texts, oldest first (LoadLoop counts a client
        that goes back to an older one); clients: request loops per host,
        each a request every pace s; slow: the slow requests too."""
        self.fleet = fleet
        self.fast = {h.name: LoadLoop(h.url, order, clients=clients, max_seconds=300, max_requests=200000,
                                      pace=pace)
                     for h in fleet.hosts}
        self.slow = {h.name: SlowRequests(h.box.url("/slow?2"), interval=3, burst=WORKERS, max_requests=120)
                     for h in fleet.hosts} if slow else {}

    def __enter__(self):
        for part in [*self.fast.values(), *self.slow.values()]:
            part.__enter__()
        for loop in self.fast.values():
            loop.wait_for(50)
        return self

    def __exit__(self, *exc):
        for part in [*self.slow.values(), *self.fast.values()]:
            part.__exit__(*exc)

    def settle(self, requests=50):
        """Let every host's request loop answer `requests` more: what a push
        left behind (a gap, a client on an old version) shows up in them."""
        for loop in self.fast.values():
            loop.wait_for(loop.total + requests)

    def report(self):
        """What the clients saw, per host: printed for the test's log."""
        lines = []
        for name in self.fast:
            slow = f"; {self.slow[name].summary()}" if name in self.slow else ""
            lines.append(f"{name}: {self.fast[name].summary()}{slow}")
        print("\n".join(lines))
        return lines

    def failed(self):
        """{host: (fast errors and non-200s, slow errors and non-200s)} where any."""
        failed = {}
        for name in self.fast:
            bad = [(dict(p.errors), {s: n for s, n in p.statuses.items() if s != 200})
                   for p in (self.fast[name], self.slow.get(name)) if p is not None]
            if any(errors or statuses for errors, statuses in bad):
                failed[name] = bad
        return failed


def steady_traffic(fleet, order):
    """Light, steady clients on every host (one each, a request every 40 ms,
    no slow requests), as production has them, for a push that is not itself
    under load. Right after a test's load stopped, a push without clients
    would have each host's watch rightly wait up to DEPLOY_WATCH_MAX (30 s)
    for the traffic the load's last seconds announced; with them, the watch
    counts its DEPLOY_WATCH_MIN_REQUESTS in its 3 s."""
    return FleetLoad(fleet, order, clients=1, slow=False, pace=0.04)


def live_everywhere(fleet, version):
    """Make every host serve a version saying `version` (a fleet push); its rev."""
    commit = fleet.commit(version)
    result = fleet.push()
    assert result.returncode == 0, result.stderr
    return commit[:12]


def same_version_everywhere(fleet):
    """The rev every host serves, after a fleet push if they disagree."""
    lives = set(fleet.lives().values())
    if len(lives) == 1 and None not in lives:
        return lives.pop().split("-")[-1].split(".")[0]
    return live_everywhere(fleet, "fleet-base")


def assert_no_candidate_anywhere(fleet, live_rev):
    """Every host: only its live vassal, in its vassals directory and in its
    Emperor, and no prepared record."""
    for host in fleet.hosts:
        assert host.prepared_records() == [], host.name
        wanted = [f"{APP}-{live_rev}.ini"]
        wait_until(lambda: host.vassals() == (wanted, wanted), 60,
                   f"{host.name} to run only {wanted} (has {host.vassals()})")


def pusher_lines(result):
    return [line.removeprefix("remote: ").rstrip() for line in result.stderr.splitlines()]



def account_pids(uids):
    """PIDs of the processes that run as one of uids."""
    pids = []
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if os.stat(f"/proc/{pid}").st_uid in uids:
                pids.append(pid)
        except OSError:
            continue
    return pids


def stop_account_processes(uids, timeout=10):
    """What still runs as the throw-away accounts (uids) once their servers
    are stopped: the ssh connections their Ansible kept open for reuse
    (ControlPersist), a lock keeper. All were started by this world; each is
    ended by its PID."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        for pid in account_pids(uids):
            try:
                os.kill(pid, signal_number)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while account_pids(uids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not account_pids(uids):
            return


def account_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
