"""What decides a dependency environment's contents, hashed into its key: the
Python that uWSGI's plugin embeds, the installer and its exact version, and
the bytes of the requirement files, constraints and nested `-r`/`-c` files
included. Same key, same environment: that is what lets versions share one."""
import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass

from . import DeployError
from .layout import VENV_KEY_LENGTH
from .paths import uwsgi_binary

# Bump when the way environments are built changes: every key changes with it.
RECIPE = "uwsgi-deploy environment, recipe 1"
KEY_LENGTH = VENV_KEY_LENGTH
# What share/emperor.ini gives every vassal (vassal-set = plugins=python3).
UWSGI_PYTHON_PLUGIN = "python3"
FACTS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embedded_python.py")
FACTS_MARKER = "uwsgi-deploy-embedded-python "   # embedded_python.MARKER (a script, not imported)
REQUIREMENTS_FILE = "requirements.txt"

INCLUDE_OPTIONS = {"-r": "requirement", "--requirement": "requirement",
                   "-c": "constraint", "--constraint": "constraint"}
EDITABLE_OPTIONS = ("-e", "--editable")
LOCATION_OPTIONS = ("-f", "--find-links", "-i", "--index-url", "--extra-index-url")
COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class Interpreter:
    executable: str     # the interpreter environments are created with (resolved)
    version: str        # e.g. "3.11.2"
    facts: tuple        # sorted (name, value) pairs uWSGI's interpreter reported


def embedded_interpreter(environ):
    """Ask uWSGI itself which Python its plugin embeds (about 20 ms): the
    interpreter a vassal will import the environment's packages with."""
    uwsgi = uwsgi_binary(environ.get("PATH"))
    # its own PYTHON*/UWSGI_* variables would change what it reports
    clean = {k: v for k, v in environ.items() if not k.startswith(("PYTHON", "UWSGI_"))}
    try:
        result = subprocess.run([uwsgi, "--plugins", UWSGI_PYTHON_PLUGIN, "--pyrun", FACTS_SCRIPT],
                                cwd="/", env=clean, stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise DeployError(f"{uwsgi} --plugins {UWSGI_PYTHON_PLUGIN}: no answer within 60 s") from None
    lines = [line for line in result.stdout.decode(errors="replace").splitlines()
             if line.startswith(FACTS_MARKER)]
    if result.returncode != 0 or not lines:
        last = (result.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise DeployError(f"cannot ask uWSGI's {UWSGI_PYTHON_PLUGIN} plugin which Python it embeds "
                          f"(is uwsgi-plugin-python3 installed?): {last}")
    facts = json.loads(lines[-1][len(FACTS_MARKER):])
    major, minor = facts["hexversion"] >> 24, (facts["hexversion"] >> 16) & 0xFF
    micro = (facts["hexversion"] >> 8) & 0xFF
    executable = os.path.join(facts["bindir"], f"python{major}.{minor}")
    if not os.access(executable, os.X_OK):
        raise DeployError(f"uWSGI's {UWSGI_PYTHON_PLUGIN} plugin embeds Python {major}.{minor}, "
                          f"but {executable} is missing: install python{major}.{minor}")
    return Interpreter(os.path.realpath(executable), f"{major}.{minor}.{micro}",
                       tuple(sorted(facts.items())))


@dataclass(frozen=True)
class RequirementFile:
    role: str           # "requirement" or "constraint"
    path: str
    data: bytes
    top: bool           # given to the installer (False: included by another file)


def read_requirement_files(requirements, constraints, base):
    """Every file that decides the environment, in order: the given
    requirement and constraint files (relative to base) and whatever they
    include with -r/-c. Refuses what a shared, immutable environment cannot
    depend on: editable installs and local paths (their contents are not in
    the key, and they point into one version's checkout)."""
    found, seen = [], set()

    def visit(role, path, where, top):
        real = os.path.realpath(path)
        if real in seen:
            return
        seen.add(real)
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as err:
            raise DeployError(f"{where}{_shown(path, base)}: {err.strerror}") from None
        found.append(RequirementFile(role, path, data, top))
        for number, line in _logical_lines(data):
            here = f"{_shown(path, base)}:{number}: "
            for include_role, target in _includes(line, here):
                if "://" in target:
                    raise DeployError(f"{here}{target}: only local files can be included "
                                      "(a URL's contents cannot be part of the key)")
                visit(include_role, os.path.join(os.path.dirname(path), target), here, False)

    for role, names in (("requirement", requirements), ("constraint", constraints)):
        for name in names:
            visit(role, os.path.join(base, name), "", True)
    return found


def _shown(path, base):
    relative = os.path.relpath(path, base)
    return path if relative.startswith("..") else relative


def _logical_lines(data):
    """(first line number, text) of each logical line: continuations joined,
    comments removed, as pip reads them."""
    text = data.decode("utf-8", "replace")
    pending, start = "", None
    for number, line in enumerate(text.split("\n"), 1):
        line = COMMENT.sub("", line.rstrip("\r"))
        if start is None:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        pending += line
        if pending.strip():
            yield start, pending.strip()
        pending, start = "", None
    if pending.strip():
        yield start, pending.strip()


def _includes(line, here):
    """(role, file) for an -r/-c line; refuses editable installs and local paths."""
    word, _, rest = line.partition(" ")
    name, equals, value = word.partition("=")
    if name in EDITABLE_OPTIONS or word.startswith("-e"):
        raise DeployError(f"{here}editable installs (-e) cannot go into a shared environment: "
                          "install the package by name or from a wheel on an index")
    if name in INCLUDE_OPTIONS:
        return [(INCLUDE_OPTIONS[name], (value if equals else rest).strip())]
    for short in ("-r", "-c"):
        if word.startswith(short) and len(word) > 2:        # -rfile.txt
            return [(INCLUDE_OPTIONS[short], line[2:].strip())]
    location = (value if equals else rest).strip() if name in LOCATION_OPTIONS else None
    if location is not None and "://" not in location or line.startswith((".", "/", "~")) \
            or re.search(r"\bfile:", line):
        raise DeployError(f"{here}{word}: local paths cannot go into a shared environment "
                          "(their contents are not part of its key): publish it as a wheel on an index")
    return []


def environment_key(interpreter, installer_identity, files):
    """The key: a hash of everything that decides the environment's contents."""
    digest = hashlib.sha256()
    for part in (RECIPE, json.dumps(interpreter.facts), interpreter.executable, installer_identity):
        digest.update(part.encode() + b"\0")
    for item in files:
        digest.update(f"{item.role}\0{len(item.data)}\0".encode())
        digest.update(item.data)
    return digest.hexdigest()[:KEY_LENGTH]
