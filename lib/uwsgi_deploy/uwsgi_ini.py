"""Expanding a user's uwsgi.ini: check it as uWSGI reads it, append the
deployer's lines, escape values for uWSGI, refuse what it cannot carry.

uWSGI rewrites ini values in passes (README, "Environment files"): `%X` magic
vars at read time, then `$(VAR)`, `@(file)` and `%(name)` placeholders. A value
survives byte for byte when every `%` is doubled and every `$` and `@` is
replaced by a placeholder that stands for that character. What cannot survive
is refused: newlines, NUL, trailing blanks (uWSGI strips them) and a literal
`%(...)` (uWSGI would re-expand it after unescaping).
"""
import re
import shlex

from . import DeployError
from .envfile import read_env_files
from .files import read_text
from .uwsgi_options import ALLOWED, SECTION, check_app_ini

PLACEHOLDERS = {"$": "uwsgi_deploy_dollar", "@": "uwsgi_deploy_at"}
PLACEHOLDER_LINES = [f"{name}={char}" for char, name in PLACEHOLDERS.items()]

TRAILING_BLANKS = " \t\r\v\f"
REEXPANDED = re.compile(r"%\([^)]*\)")   # any %( ... ) : uWSGI resolves names, even with spaces
# Embedded Python decodes os.environ by the locale: under LC_CTYPE=C a non-ASCII
# value arrives as surrogate escapes. Vassals get a UTF-8 LC_CTYPE unless the
# app's own environment chooses one.
LOCALE_DEFAULT = ("LC_CTYPE", "C.UTF-8")
LOCALE_CHOOSERS = {"LC_ALL", "LC_CTYPE"}
ESCAPES = {"%": "%%", **{char: f"%({name})" for char, name in PLACEHOLDERS.items()}}


def escape_value(value, what):
    """Return value written so that uWSGI reads back exactly value.
    `what` names the value in errors (FILE:LINE and variable, never the value)."""
    if "\n" in value:
        raise DeployError(f"{what}: a newline cannot be passed through uwsgi.ini")
    if "\0" in value:
        raise DeployError(f"{what}: a NUL byte cannot be passed through uwsgi.ini")
    if value and value[-1] in TRAILING_BLANKS:
        raise DeployError(f"{what}: trailing whitespace would be stripped by uWSGI")
    if REEXPANDED.search(value):
        raise DeployError(f"{what}: '%(...)' would be expanded by uWSGI as a placeholder")
    return "".join(ESCAPES.get(char, char) for char in value)


class UwsgiIni:
    """A user's uwsgi.ini, checked the way uWSGI reads it (uwsgi_options) and
    kept byte for byte; the deployer's lines follow under a [uwsgi] header of
    their own at the end, so uWSGI applies them whatever section, header or
    line came before."""

    def __init__(self, text, path, allowed=ALLOWED):
        self.path = path
        check_app_ini(text, path, allowed)
        self.original = text if text.endswith("\n") or not text else text + "\n"
        self.added = []

    @classmethod
    def read(cls, path, allowed=ALLOWED):
        return cls(read_text(path), path, allowed)

    def add_options(self, options, comment="added by uwsgi-deploy"):
        """Append (option, raw value) lines to the deployer's block."""
        if not self.added:
            self.added = ["", f"[{SECTION}]", f"; {comment}"]
        self.added.extend(f"{option} = {value}" for option, value in options)

    def text(self):
        return self.original + "".join(line + "\n" for line in self.added)


def deploy_options(env_entries, chdir=None, extra=()):
    """The (option, escaped value) lines the deployer adds: placeholders that
    the escaping relies on, chdir, one env line per variable, then extra."""
    options = [("set-placeholder", line) for line in PLACEHOLDER_LINES]
    if chdir is not None:
        options.append(("chdir", escape_value(chdir, "chdir")))
    env_entries = list(env_entries)
    if not LOCALE_CHOOSERS & {entry.name for entry in env_entries}:
        options.append(("env", "=".join(LOCALE_DEFAULT)))
    for entry in env_entries:
        options.append(("env", f"{entry.name}=" + escape_value(entry.value, f"{entry.where}: {entry.name}")))
    for option, value in extra:
        options.append((option, escape_value(str(value), option)))
    return options


LOG_CHECK_INTERVAL = 5   # seconds between looks at a version's log size


def log_cap_options(log, backup, max_bytes):
    """Lines that keep log under max_bytes (give or take what the app writes
    in LOG_CHECK_INTERVAL): a daemon the vassal's master runs (and stops with
    it) copies a log over the cap to backup and empties it; uWSGI opened the
    log O_APPEND, so writers carry on at its new end. uWSGI's own log-maxsize
    is not used: it turns on the master logger, whose log pipe is
    non-blocking, and then a request that logs a burst (100 lines at once, on
    this machine's max_dgram_qlen of 10; SOCK_STREAM mode too, under load)
    fails with no response at all."""
    log, backup = shlex.quote(log), shlex.quote(backup)
    check = (f'while sleep {LOG_CHECK_INTERVAL}; do '
             f'if [ "$(stat -c %s {log} 2>/dev/null || echo 0)" -gt {max_bytes} ]; then '
             f'cp {log} {backup} && : > {log}; fi; done')
    return [("attach-daemon", check)]


def expand_ini(ini_path, env_entries, chdir=None, extra=(), allowed=ALLOWED):
    """The text of ini_path with the deployer's lines added to [uwsgi];
    allowed: the options the app may set (uwsgi_options.allowed_options)."""
    ini = UwsgiIni.read(ini_path, allowed)
    ini.add_options(deploy_options(env_entries, chdir, extra))
    return ini.text()


def expand_with_env_files(ini_path, env_paths, chdir=None, base_environ=None, warn=None, allowed=ALLOWED):
    """expand_ini with the variables of env files (later files win)."""
    entries = read_env_files(env_paths, base_environ, warn)
    return expand_ini(ini_path, entries.values(), chdir, allowed=allowed)
