"""Settings: defaults, overridden by a config file, overridden by DEPLOY_* variables.

Every setting is named DEPLOY_<NAME>. The config file holds the same names as
NAME=value lines, read with python-dotenv like the environment files (so
`export`, quotes, comments and ${VAR} work: close to, but not exactly,
systemd's EnvironmentFile=); it is $DEPLOY_CONFIG, or ~/deploy.conf when that
is unset. Paths default to places under DEPLOY_HOME, so moving the deploy
root moves everything with it.
"""
import os
import re
from dataclasses import dataclass

from . import DeployError
from .envfile import read_env_file

PREFIX = "DEPLOY_"


@dataclass(frozen=True)
class Setting:
    name: str       # attribute name; the variable is DEPLOY_<NAME upper>
    default: str    # may name other settings as {home}, {run_dir}
    kind: type      # str, int or float; paths are str
    help: str

    @property
    def variable(self):
        return PREFIX + self.name.upper()


SETTINGS = (
    Setting("home", "~", str, "deploy root: versions, live links, deploy.log"),
    Setting("vassals_dir", "{home}/vassals", str, "directory the Emperor watches"),
    Setting("run_dir", "{home}/run", str, "sockets, stats sockets and locks"),
    Setting("log_dir", "{home}/log", str, "one uWSGI log per version"),
    Setting("env_file", "{home}/environment.sh", str, "server-side secrets, read after the repo's"),
    Setting("app_env_dir", "{home}", str, "where each app's own variables file APP.env lives (read last)"),
    Setting("log_file", "{home}/deploy.log", str, "one line per successful deploy"),
    Setting("venvs_dir", "{home}/venvs", str, "dependency environments, one per key, shared by versions"),
    Setting("venv_installer", "uv", str, "what builds a dependency environment: uv or pip"),
    Setting("emperor_stats", "{run_dir}/emperor.stats", str,
            "the Emperor's stats socket, poked to make it rescan at once"),
    Setting("branch", "", str, "branch that deploys (empty: the one the bare repo's HEAD names)"),
    Setting("ping_path", "/ping", str, "path that must answer 200"),
    Setting("probe_timeout", "30", float, "seconds for a new version to answer the probe"),
    Setting("probe_via", "socket", str,
            "socket: start the new version on its unix socket and probe there; "
            "http: probe on a loopback HTTP port first, then reload onto the socket (~1 s more)"),
    Setting("ready_timeout", "30", float, "seconds for the unix socket to answer after reconfigure"),
    Setting("setup_timeout", "1800", float, "seconds the setup script may run"),
    Setting("drain_timeout", "30", float, "seconds to let the old version finish its requests"),
    Setting("watch", "3", float,
            "seconds the new version is watched after the switch, the old one kept ready (0: off)"),
    Setting("watch_min_requests", "50", int,
            "requests (besides /ping) each side needs before the watch judges the new version's traffic"
            " against the old one's"),
    Setting("watch_5xx", "1", float,
            "the watch refuses a version whose 5xx rate is this many percentage points above the old one's"
            " (and beyond chance; 0: not judged)"),
    Setting("watch_slower", "2", float,
            "the watch refuses a version whose p50 on a path is this many times the old one's ..."
            " (0: not judged)"),
    Setting("watch_slower_ms", "10", float, "... and at least this many milliseconds more"),
    Setting("watch_baseline", "300", float,
            "seconds of the old version's traffic before the switch that the new version is compared with"),
    Setting("watch_max", "30", float,
            "seconds the watch may run past DEPLOY_WATCH while it has too few requests and the old"
            " version's traffic says more are coming"),
    Setting("canary", "0", float,
            "seconds a canary runs before a push's version takes all traffic (0: only a push with"
            " `-o canary` runs one, for 60 s)"),
    Setting("canary_share", "10", int,
            "percent of clients (by address) the nginx site deploy-init prints sends to a canary"
            " (1 to 50; a change needs the site printed again and an nginx reload)"),
    Setting("lock_timeout", "600", float, "seconds a deploy waits for another deploy of the app"),
    Setting("keep", "4", int, "versions deploy-cleanup keeps by default"),
    Setting("push_max_mb", "500", int,
            "largest push git accepts, in MiB (receive.maxInputSize, set by deploy-init; 0: no limit)"),
    Setting("checkout_max_mb", "2048", int,
            "largest checkout, in MiB: the sum of the pushed tree's file sizes, refused before anything is "
            "written (0: no limit)"),
    Setting("fleet_batch", "", str,
            "on a fleet's primary: hosts committed at a time, a number or a percentage (empty: all at once)"),
    Setting("stop_timeout", "30", float,
            "seconds a retiring version's workers, clock and cron jobs get after SIGTERM to finish, "
            "before SIGKILL"),
    Setting("singletons", "yes", str,
            "yes: this host runs the apps' clock and cron processes; no: only their workers "
            "(in a fleet, yes on one host)"),
    Setting("fleet_timeout", "60", float,
            "on a fleet's primary: seconds each remote step of a fleet deploy may take on a host (the push to it,"
            " an abort, status); a commit or rollback, which switches traffic, gets this plus the host's own"
            " waits (DEPLOY_READY_TIMEOUT, DEPLOY_PROBE_TIMEOUT, DEPLOY_WATCH, DEPLOY_WATCH_MAX,"
            " DEPLOY_DRAIN_TIMEOUT); a host that stops answering fails sooner (see docs/fleet-faults.md)"),
    Setting("fleet_prepare_timeout", "1900", float,
            "on a fleet's primary: seconds a host's prepare (checkout .. probe, its setup too) may take: more"
            " than the hosts' DEPLOY_SETUP_TIMEOUT; a host that stops answering fails sooner (see docs/fleet-faults.md)"),
    Setting("prepared_max_age", "3600", float,
            "seconds a prepared candidate (deploy-version --prepare) may wait for its commit before this host"
            " removes it by itself (0: until the next deploy)"),
    Setting("vassal_log_max_mb", "20", int,
            "a version's uWSGI log is kept under this size in MiB: a bigger one becomes the one old copy"
            " (0: no cap)"),
    Setting("ini_allow", "", str,
            "uwsgi.ini options apps may set beyond the built-in allow-list, space-separated "
            "(docs/security.md; never the deployer's own, includes, set/if/for or env)"),
)
BY_VARIABLE = {s.variable: s for s in SETTINGS}
NOT_PATHS = {s.name for s in SETTINGS if s.kind is not str} | {"branch", "ping_path", "probe_via", "venv_installer",
                                                               "fleet_batch", "ini_allow", "singletons"}
FLEET_BATCH = re.compile(r"([1-9][0-9]*%?)?\Z")
CHOICES = {"probe_via": ("http", "socket"), "venv_installer": ("uv", "pip"), "singletons": ("yes", "no")}


class Settings:
    """Resolved settings; attributes are the Setting names."""

    def __init__(self, values, sources):
        self.__dict__.update(values)
        self.sources = sources   # name -> "default" | config path | "environment"

    def __repr__(self):
        return "Settings(%s)" % ", ".join(f"{s.name}={getattr(self, s.name)!r}" for s in SETTINGS)


def _expand_home(path, environ):
    """~ means the HOME of the given environment (tests and hooks pass their own)."""
    if path == "~" or path.startswith("~/"):
        path = environ.get("HOME", os.path.expanduser("~")) + path[1:]
    return os.path.abspath(path)


def config_path(environ):
    return _expand_home(environ.get("DEPLOY_CONFIG") or "~/deploy.conf", environ)


def _read_config(path):
    """The config file's DEPLOY_* values; unknown DEPLOY_ names are an error (typos)."""
    if not os.path.exists(path):
        return {}
    values = {}
    for entry in read_env_file(path):
        if entry.name not in BY_VARIABLE and entry.name != "DEPLOY_CONFIG":
            raise DeployError(f"{path}:{entry.line}: unknown setting {entry.name}")
        values[entry.name] = entry.value
    return values


def _convert(setting, raw, source):
    if setting.kind is str:
        return raw
    try:
        value = setting.kind(raw)
    except ValueError:
        raise DeployError(f"{source}: {setting.variable} must be a number, not {raw!r}") from None
    if value < 0:
        raise DeployError(f"{source}: {setting.variable} must not be negative")
    return value


def load(environ=None):
    """Resolve every setting: environment beats config file beats default."""
    environ = os.environ if environ is None else environ
    path = config_path(environ)
    from_file = _read_config(path)
    values, sources = {}, {}
    for setting in SETTINGS:
        if setting.variable in environ:
            raw, source = environ[setting.variable], "environment"
        elif setting.variable in from_file:
            raw, source = from_file[setting.variable], path
        else:
            raw, source = setting.default.format(**values), "default"
        value = _convert(setting, raw, source)
        if setting.name not in NOT_PATHS:
            value = _expand_home(value, environ)
        values[setting.name] = value
        sources[setting.name] = source
    for name, allowed in CHOICES.items():
        if values[name] not in allowed:
            raise DeployError(f"{sources[name]}: DEPLOY_{name.upper()} must be one of "
                              f"{', '.join(allowed)}, not {values[name]!r}")
    if not FLEET_BATCH.match(values["fleet_batch"]):
        raise DeployError(f"{sources['fleet_batch']}: DEPLOY_FLEET_BATCH must be a number of hosts or a "
                          f"percentage (like 1 or 25%), not {values['fleet_batch']!r}")
    if not 1 <= values["canary_share"] <= 50:
        raise DeployError(f"{sources['canary_share']}: DEPLOY_CANARY_SHARE must be 1 to 50 (percent)")
    for name in ("fleet_timeout", "fleet_prepare_timeout"):
        if values[name] < 1:
            raise DeployError(f"{sources[name]}: DEPLOY_{name.upper()} must be at least 1 (seconds)")
    if not values["ping_path"].startswith("/"):
        raise DeployError(f"{sources['ping_path']}: DEPLOY_PING_PATH must start with '/'")
    return Settings(values, sources)
