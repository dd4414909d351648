"""The first half of a deploy (pipeline.py): the candidate, checkout ..
probe and the check of what it opened (inspect). The new version is checked out, set up and started on its own
socket, where it takes no traffic: everything done here can be abandoned
(abandon), and any failure is. Each stage is a method; build() runs them in
order, handing each what the one before produced (a Checkout, the variables,
a VassalConfig), so nothing appears on the object half way."""
import os
from dataclasses import dataclass

from . import DeployError, FailedWithOutput, error_line
from .candidates import read_record
from .checkout import deploy_dir, export_tree, inside
from .envfile import check_server_side, read_env_files
from .layout import create_directories
from .links import remove_if_exists
from .listeners import LinkWatch, check_candidate
from .paths import tools_first
from .probe import free_loopback_port, wait_for_200
from .setup_script import make_executable, run_setup
from .stages import StageFailed
from .stats import poke
from .uwsgi_ini import expand_ini, log_cap_options
from .uwsgi_options import allowed_options
from .vassal import died_while_starting, log_tail, remove_vassal, wait_vassal_gone, wait_workers_accepting, \
    write_vassal_ini
from .venv_key import REQUIREMENTS_FILE
from .venvs import provide as provide_environment

CANDIDATE_GRACE = 2.0   # seconds a failed candidate gets to stop by itself


@dataclass(frozen=True)
class Checkout:
    """A version's files on disk: its workdir, and the directory holding its
    deploy files (uwsgi.ini, setup, environment.sh: checkout.deploy_dir)."""
    workdir: str
    deploy_dir: str

    def file(self, name, stage):
        """A deploy file's path if it exists, refusing links out of the checkout."""
        path = os.path.join(self.deploy_dir, name)
        if not os.path.lexists(path):
            return None
        try:
            inside(self.workdir, path, os.path.relpath(path, self.workdir))
        except DeployError as error:
            raise StageFailed(stage, str(error)) from None
        return path


@dataclass(frozen=True)
class VassalConfig:
    """What the vassal ini is made of: the user's uwsgi.ini and the variables
    it is expanded with. text(listen) writes it for one listening socket."""
    settings: object
    version: object
    ini: str
    entries: tuple
    deploy_dir: str

    def text(self, listen):
        """The vassal ini: the user's, expanded, with where it listens and logs.
        need-app makes a failed import kill the vassal instead of serving 500s;
        the daemon that caps the log runs under (and turns on) the master."""
        log_cap = self.settings.vassal_log_max_mb * 1024 * 1024
        logs = [("logto", self.version.log)]
        if log_cap:
            logs += log_cap_options(self.version.log, self.version.log_backup, log_cap)
        return expand_ini(self.ini, list(self.entries), chdir=self.deploy_dir,
                          extra=[("need-app", "true"), *logs,
                                 ("stats", self.version.stats_socket), listen],
                          allowed=allowed_options(self.settings.ini_allow.split()))


class Candidate:
    """version (a run) built and started beside the live one, for request
    (stages.Request), its stages run by stages (stages.Stages)."""

    def __init__(self, request, version, stages):
        self.request, self.version, self.stages = request, version, stages
        self.settings, self.report = request.settings, stages.report

    def build(self):
        """checkout, env, setup, expand, probe, reconfigure, inspect; a failure
        raises (the caller abandons the candidate)."""
        checkout = self.checkout()
        entries = self.read_env(checkout)
        self.setup(checkout, entries)
        vassal = self.expand(checkout, entries)
        watch = LinkWatch(self.settings, self.version.app)
        self.probe(vassal)
        self.reconfigure(vassal)
        self.inspect(watch)

    def checkout(self):
        source = self.request.source
        if source is None:
            if not os.path.isdir(self.version.workdir):
                raise StageFailed("checkout", f"{self.version.workdir}: no such directory")
        else:
            with self.stages.stage("checkout", f"Checking out {source.commit[:12]} into {self.version.workdir}"):
                export_tree(source.git_dir, source.commit, self.version)
        try:
            return Checkout(self.version.workdir, deploy_dir(self.version.workdir))
        except DeployError as error:
            raise StageFailed("checkout", str(error)) from None

    def read_env(self, checkout):
        """The variables the version runs with, by name (envfile.py)."""
        with self.stages.stage("env", "Reading environment"):
            for server_side in (self.settings.env_file, self.request.app.env_file):
                check_server_side(server_side, self.report.warn)
            paths = self.request.app.env_files(checkout.file("environment.sh", "env"))
            entries = read_env_files(paths, self.request.environ, warn=self.report.warn)
            names = ", ".join(entries) or "none"
            self.report.say(f"variables from {', '.join(paths) or 'no file'}: {names}")
            return entries

    def setup(self, checkout, entries):
        """The app's setup script; or, with none, the dependency environment
        for its requirements.txt (what a setup calling deploy-venv gets)."""
        script = checkout.file("setup", "setup")
        requirements = None if script else checkout.file(REQUIREMENTS_FILE, "setup")
        if script is None and requirements is None:
            return
        if not self.request.run_setup:
            why = "a restart keeps the version's files" if self.request.restart else "--no-setup"
            self.report.stage(f"Skipping setup ({why})")
            return
        environ = dict(self.request.environ, **{name: e.value for name, e in entries.items()})
        if script is None:
            with self.stages.stage("setup", f"Preparing the environment for {REQUIREMENTS_FILE} (no setup)"):
                provide_environment(self.settings, checkout.deploy_dir, environ=environ,
                                    output=self.report.binary_stream, say=self.report.say,
                                    warn=self.report.warn, holder=f"{self.version.name} ({self.request.how})",
                                    check_ini=True, on_point=self.stages.point)
            return
        with self.stages.stage("setup", "Running setup"):
            make_executable(script)
            environ["PATH"] = tools_first(environ.get("PATH"))   # deploy-venv, from setup
            run_setup(script, checkout.deploy_dir, environ, self.settings.setup_timeout,
                      self.report.binary_stream)

    def expand(self, checkout, entries):
        """The VassalConfig, once the user's uwsgi.ini expands (bad input is
        refused here, before anything starts)."""
        with self.stages.stage("expand", "Expanding uwsgi.ini"):
            ini = checkout.file("uwsgi.ini", "expand")
            if ini is None:
                raise DeployError(f"no uwsgi.ini in {checkout.deploy_dir} (nor written by setup)")
            self.version.check_socket_paths()
            vassal = VassalConfig(self.settings, self.version, ini, tuple(entries.values()), checkout.deploy_dir)
            vassal.text(("http-socket", "127.0.0.1:1"))   # refuse bad input now
            return vassal

    def probe(self, vassal):
        """Start the candidate where the probe can reach it: straight on its
        unix socket (the default), or with DEPLOY_PROBE_VIA=http on a free
        loopback HTTP port, which costs the reload of the next stage."""
        with self.stages.stage("probe", f"Probing {self.version.run_name} for {self.settings.ping_path}"):
            create_directories(self.settings)
            # a retired incarnation of this version may still be finishing requests
            if not wait_vassal_gone(self.settings, self.version, self.settings.drain_timeout):
                raise DeployError(f"an earlier {self.version.name} vassal is still stopping")
            remove_if_exists(self.version.log)   # this attempt's log only
            remove_if_exists(self.version.log_backup)
            if self.settings.probe_via == "socket":
                self.start(vassal, ("socket", self.version.socket), "unix:" + self.version.socket,
                           self.settings.probe_timeout, first_start=True)
            else:
                port = free_loopback_port()
                self.start(vassal, ("http-socket", f"127.0.0.1:{port}"), f"http://127.0.0.1:{port}",
                           self.settings.probe_timeout, first_start=True)

    def reconfigure(self, vassal):
        """Rewrite the vassal to listen on its unix socket; the Emperor reloads it."""
        if self.settings.probe_via == "socket":
            return   # it has listened there from the start
        with self.stages.stage("reconfigure", f"Moving {self.version.run_name} to its socket"):
            self.start(vassal, ("socket", self.version.socket), "unix:" + self.version.socket,
                       self.settings.ready_timeout, first_start=False)

    def inspect(self, watch):
        """What the candidate opened, from /proc (listeners.py)."""
        with self.stages.stage("inspect", f"Checking what {self.version.run_name} listens on"):
            processes, sockets = check_candidate(self.settings, self.version, watch)
            self.report.say(f"{processes} processes, {sockets} sockets: none listens but its own socket and stats")

    def start(self, vassal, listen, target, timeout, first_start):
        """Write the vassal listening on `listen` and wait until target answers
        the ping path with 200 and every worker accepts (the first answer can
        come while a reload still spawns workers). A failure carries the tail
        of the vassal's log."""
        try:
            write_vassal_ini(self.version.vassal_ini, vassal.text(listen))
            poke(self.settings)
            result = wait_for_200(target, self.settings.ping_path, timeout,
                                  alive=lambda: died_while_starting(self.settings, self.version, first_start))
            if not result.ok:
                raise DeployError(f"GET {self.settings.ping_path} on {target}: no 200 within "
                                  f"{timeout:g} s (last: {result.seen})")
            if not wait_workers_accepting(self.version, timeout):
                raise DeployError("its workers did not all start accepting requests")
        except DeployError as error:
            raise FailedWithOutput(str(error), log_tail(self.version.log), "the vassal log") from None

    def check_prepared(self):
        """A candidate prepared earlier (deploy-version --prepare) is still
        there and answers: only what happened since the prepare can fail here
        (a deploy in between removed it, the Emperor restarted, the app died)."""
        if read_record(self.version) is None:
            raise DeployError(f"{self.version.run_name} is not prepared (deploy-version --prepare first; "
                              "a deploy of the app since then removes it)")
        if not os.path.exists(self.version.vassal_ini):
            raise DeployError(f"{self.version.run_name}'s vassal is gone since it was prepared")
        target = "unix:" + self.version.socket
        result = wait_for_200(target, self.settings.ping_path, self.settings.probe_timeout,
                              alive=lambda: died_while_starting(self.settings, self.version, False))
        if not result.ok:
            raise DeployError(f"{self.version.run_name} stopped answering since it was prepared "
                              f"(GET {self.settings.ping_path} on {target}: {result.seen})")

    def abandon(self):
        """A candidate serves nobody: a short grace, then it is killed (an app
        stuck importing would ignore a graceful stop). Should that fail too,
        the next deploy's sweep removes it; the first failure is what counts.
        True if it existed."""
        existed = os.path.exists(self.version.vassal_ini)
        try:
            remove_vassal(self.settings, self.version, self.settings.drain_timeout,
                          kill_after=CANDIDATE_GRACE)
            remove_if_exists(self.version.prepared_file)
        except Exception as error:
            self.report.warn(f"could not remove {self.version.run_name} now ({error_line(error)}); "
                             "the next deploy will")
        return existed
