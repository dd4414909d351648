"""Environment files (environment.sh), read with python-dotenv.

The dialect is python-dotenv's, not bash's: `export K=V`, quotes, comments and
`${VAR}` references work; `$VAR` without braces, `$(cmd)` and backticks stay
literal; `${VAR}` is expanded even inside single quotes. Where a value looks
like it relied on the shell, we warn (naming file, line and variable, never
the value) instead of guessing.

Errors name the file and line, never the line's text: a malformed line is
often a secret (a value without its NAME=, a wrapped private key).
"""
import io
import os
import re
from dataclasses import dataclass

from dotenv.parser import parse_stream
from dotenv.variables import parse_variables

from . import DeployError
from .files import read_text

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
UWSGI_PREFIX = "UWSGI_"
# Every exec of the app's environment (setup, deploy-run, uWSGI re-executing
# itself on a reload) must fit the kernel's limits: one NAME=value string at
# most 128 KiB (MAX_ARG_STRLEN), all of argv and the environment at most a
# quarter of the stack limit (2 MiB with the usual 8 MiB). A value may hold
# 64 KiB and all of an app's variables 256 KiB, which leaves the rest of the
# environment (the account's, the tools') and argv more than 1.5 MiB.
MAX_VALUE_BYTES = 64 * 1024
MAX_ENVIRONMENT_BYTES = 256 * 1024
SHELLISM = re.compile(r"\$[A-Za-z_]|\$\(|`")
QUOTE_AFTER_EQUALS = re.compile(r"\s*(?:export\s+)?(?:'[^']*'|[^=]*?)\s*=\s*(['\"]?)")


@dataclass(frozen=True)
class EnvEntry:
    name: str
    value: str          # after ${VAR} expansion
    path: str
    line: int

    @property
    def where(self):
        return f"{self.path}:{self.line}"


def _quote_of(original):
    match = QUOTE_AFTER_EQUALS.match(original)
    return match.group(1) if match else ""


def _shell_warning(raw, original):
    quote = _quote_of(original)
    if quote == "'" and "${" in raw:
        return "${...} is expanded even inside single quotes"
    if quote != "'" and SHELLISM.search(raw):
        return "looks like shell expansion ($VAR, $(cmd) or `cmd`), which stays literal here; use ${VAR}"
    return None


def parse_env_text(text, path, lookup=None, warn=None):
    """Entries of one env file's text, in order; ${VAR} resolved via lookup(name)
    and the entries before it. Raises DeployError naming FILE:LINE on a bad line."""
    resolved = {}
    entries = []
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            raise DeployError(f"{path}:{line}: cannot parse this line (expected NAME=value)")
        if binding.key is None:
            continue   # blank line or comment
        if binding.value is None:
            raise DeployError(f"{path}:{line}: no '=' on this line (expected NAME=value; "
                              "NAME= for an empty value)")
        if not NAME.match(binding.key):
            raise DeployError(f"{path}:{line}: invalid variable name (use letters, digits and '_', "
                              "not starting with a digit)")
        if warn:
            problem = _shell_warning(binding.value, binding.original.string)
            if problem:
                warn(f"{path}:{line}: {binding.key}: {problem}")
        env = _Chain(resolved, lookup)
        value = "".join(atom.resolve(env) for atom in parse_variables(binding.value))
        resolved[binding.key] = value
        entries.append(EnvEntry(binding.key, value, path, line))
    return entries


class _Chain(dict):
    """Mapping for dotenv's resolver: this file's earlier values, then lookup."""

    def __init__(self, values, lookup):
        super().__init__(values)
        self.lookup = lookup

    def get(self, key, default=None):
        if key in self:
            return self[key]
        found = self.lookup(key) if self.lookup else None
        return default if found is None else found


def read_env_file(path, lookup=None, warn=None):
    return parse_env_text(read_text(path), path, lookup, warn)   # a CR in a value is kept


def check_app_variable(entry):
    """uWSGI reads UWSGI_<OPTION> variables as options: one set with `env =`
    becomes an option when the vassal re-execs itself (a reload), unchecked."""
    if entry.name.upper().startswith(UWSGI_PREFIX):
        raise DeployError(f"{entry.where}: {entry.name}: names starting with {UWSGI_PREFIX} become "
                          "uWSGI options when the app reloads; rename it")


def variable_bytes(name, value):
    """What NAME=value costs in an exec's environment: the string, its NUL
    and its pointer."""
    return len(name.encode()) + 1 + len(value.encode("utf-8", "surrogateescape")) + 1 + 8


def check_value_size(name, value, where=None):
    """Refuse (naming where and NAME, never the value) a value over MAX_VALUE_BYTES."""
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > MAX_VALUE_BYTES:
        raise DeployError(f"{where + ': ' if where else ''}{name}: the value is {size} bytes, more than "
                          f"the {MAX_VALUE_BYTES} a variable may hold")


def check_environment_size(entries, what="the app's variables"):
    """Refuse entries (EnvEntry) that together exceed MAX_ENVIRONMENT_BYTES."""
    total = sum(variable_bytes(entry.name, entry.value) for entry in entries)
    if total > MAX_ENVIRONMENT_BYTES:
        raise DeployError(f"{what} take {total} bytes, more than {MAX_ENVIRONMENT_BYTES}: every exec of "
                          "the app (setup, deploy-run, uWSGI's reload) would risk failing with E2BIG")


def check_server_side(path, warn):
    """A server-side env file holds secrets. One that another user can write
    is refused: they could add variables (LD_PRELOAD, PYTHONPATH) that run
    their code inside the app. One that others can read gets a warning: the
    secret is out already, and refusing would not take it back but would stop
    every deploy, fixes included, until someone logs in."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if info.st_uid not in (os.getuid(), 0) or info.st_mode & 0o022:
        raise DeployError(f"{path}: writable by other users (owner uid {info.st_uid}, mode "
                          f"{info.st_mode & 0o777:o}): chown it to this account and chmod 600 it")
    if info.st_mode & 0o044:
        warn(f"{path} is readable by other users (mode {info.st_mode & 0o777:o}): chmod 600 {path}")


def read_env_files(paths, base_environ=None, warn=None):
    """Merge an app's env files in order (later files win); ${VAR} sees
    earlier files' values, then base_environ. Returns {name: EnvEntry} in
    first-seen order. A UWSGI_ name is refused (check_app_variable), and so
    are a value or a whole over the size limits (MAX_VALUE_BYTES,
    MAX_ENVIRONMENT_BYTES)."""
    merged = {}
    base_environ = base_environ or {}

    def lookup(name):
        if name in merged:
            return merged[name].value
        return base_environ.get(name)

    for path in paths:
        for entry in read_env_file(path, lookup, warn):
            check_app_variable(entry)
            check_value_size(entry.name, entry.value, entry.where)
            merged[entry.name] = entry
    check_environment_size(merged.values(), f"the variables of {', '.join(paths)}")
    return merged
