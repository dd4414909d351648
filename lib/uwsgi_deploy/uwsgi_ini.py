"""Expanding a user's uwsgi.ini: escape values for uWSGI, refuse what it cannot carry.

uWSGI rewrites ini values in passes (see docs/escaping in README): `%X` magic
vars at read time, then `$(VAR)`, `@(file)` and `%(name)` placeholders. A value
survives byte for byte when every `%` is doubled and every `$` and `@` is
replaced by a placeholder that stands for that character. What cannot survive
is refused: newlines, NUL, trailing blanks (uWSGI strips them) and a literal
`%(...)` (uWSGI would re-expand it after unescaping).
"""
import io
import re

from iniparse import INIConfig
from iniparse.ini import CommentLine, EmptyLine, LineContainer, OptionLine
from iniparse.configparser import MissingSectionHeaderError, ParsingError

from . import DeployError
from .envfile import read_env_files

SECTION = "uwsgi"
PLACEHOLDERS = {"$": "uwsgi_deploy_dollar", "@": "uwsgi_deploy_at"}
PLACEHOLDER_LINES = [f"{name}={char}" for char, name in PLACEHOLDERS.items()]

# Options whose values the deployer decides: where the vassal listens, logs
# and where it runs. A user setting one would double or fight ours.
OWNED_OPTIONS = frozenset("""
    socket uwsgi-socket http-socket https-socket http https http-socket-modifier1
    fastcgi-socket fastcgi-nph-socket scgi-socket scgi-nph-socket raw-socket
    puwsgi-socket suwsgi-socket ssl-socket zeromq zmq zeromq-socket zmq-socket
    shared-socket http-to https2 socket-protocol protocol
    stats stats-server daemonize daemonize2 pidfile pidfile2 safe-pidfile
    safe-pidfile2 logto logto2 chdir chdir2
""".split())

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


def normalize_option(name):
    return name.strip().lower().replace("_", "-")


def owned_options_set(text, path):
    """(line, option) for each deployer-owned option set in the [uwsgi] section,
    read the way uWSGI reads lines (leading blanks ignored, key up to '=')."""
    found, section = [], None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in ";#":
            continue
        if stripped.startswith("["):
            section = stripped[1:].split("]", 1)[0].strip()
            continue
        if section == SECTION and "=" in stripped:
            option = normalize_option(stripped.split("=", 1)[0])
            if option in OWNED_OPTIONS:
                found.append((number, option))
    return found


class UwsgiIni:
    """A user's uwsgi.ini, parsed with iniparse so unknown lines, comments and
    repeated keys (several `env =`) are written back exactly as they were."""

    def __init__(self, text, path):
        self.path = path
        try:
            self.config = INIConfig(io.StringIO(text))
        except MissingSectionHeaderError as err:
            raise DeployError(f"{path}:{err.lineno}: option outside any [section]") from None
        except ParsingError as err:
            number, _line = err.errors[0]
            raise DeployError(f"{path}:{number}: cannot parse this line (expected 'option = value')") from None
        self.sections = [c for c in self.config._data.contents
                         if isinstance(c, LineContainer) and c.name == SECTION]
        if not self.sections:
            raise DeployError(f"{path}: no [{SECTION}] section")
        for number, option in owned_options_set(text, path):
            raise DeployError(f"{path}:{number}: option '{option}' is set by the deployer; remove it")

    @classmethod
    def read(cls, path):
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except FileNotFoundError:
            raise DeployError(f"{path}: no such file") from None
        except UnicodeDecodeError as err:
            raise DeployError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except OSError as err:
            raise DeployError(f"{path}: {err.strerror}") from None
        return cls(text, path)

    def add_options(self, options, comment="added by uwsgi-deploy"):
        """Append (option, raw value) lines at the end of the last [uwsgi]
        section, even when other sections follow it."""
        section = self.sections[-1]
        # Keep the section's trailing blank line after our block, not before it.
        tail = []
        while section.contents and isinstance(section.contents[-1], (EmptyLine, CommentLine)):
            tail.insert(0, section.contents.pop())
        section.add(CommentLine(f" {comment}", ";"))
        for option, value in options:
            section.add(LineContainer(OptionLine(option, value)))
        section.extend(tail)

    def text(self):
        text = str(self.config)
        return text if text.endswith("\n") else text + "\n"


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


def expand_ini(ini_path, env_entries, chdir=None, extra=()):
    """The text of ini_path with the deployer's lines added to [uwsgi]."""
    ini = UwsgiIni.read(ini_path)
    ini.add_options(deploy_options(env_entries, chdir, extra))
    return ini.text()


def expand_with_env_files(ini_path, env_paths, chdir=None, base_environ=None, warn=None):
    """expand_ini with the variables of env files (later files win)."""
    entries = read_env_files(env_paths, base_environ, warn)
    return expand_ini(ini_path, entries.values(), chdir)
