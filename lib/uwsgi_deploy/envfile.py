"""Environment files (environment.sh), read with python-dotenv.

The dialect is python-dotenv's, not bash's: `export K=V`, quotes, comments and
`${VAR}` references work; `$VAR` without braces, `$(cmd)` and backticks stay
literal; `${VAR}` is expanded even inside single quotes. Where a value looks
like it relied on the shell, we warn (naming file, line and variable, never
the value) instead of guessing.
"""
import io
import re
from dataclasses import dataclass

from dotenv.parser import parse_stream
from dotenv.variables import parse_variables

from . import DeployError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
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
        if not NAME.match(binding.key):
            raise DeployError(f"{path}:{line}: invalid variable name {binding.key!r}")
        if binding.value is None:
            raise DeployError(f"{path}:{line}: {binding.key} has no '=' (write {binding.key}= for an empty value)")
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
    try:
        with open(path, encoding="utf-8", newline="") as stream:   # keep a CR in a value
            text = stream.read()
    except UnicodeDecodeError as err:
        raise DeployError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise DeployError(f"{path}: {err.strerror}") from None
    return parse_env_text(text, path, lookup, warn)


def read_env_files(paths, base_environ=None, warn=None):
    """Merge env files in order (later files win); ${VAR} sees earlier files'
    values, then base_environ. Returns {name: EnvEntry} in first-seen order."""
    merged = {}
    base_environ = base_environ or {}

    def lookup(name):
        if name in merged:
            return merged[name].value
        return base_environ.get(name)

    for path in paths:
        for entry in read_env_file(path, lookup, warn):
            merged[entry.name] = entry
    return merged
