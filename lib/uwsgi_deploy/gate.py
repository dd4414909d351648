"""deploy-gate: what a scoped key may run, checked before it runs.

sshd runs the gate for every login with a key deploy-keys added (its
authorized_keys line forces `command="deploy-gate --key NAME --role ROLE
--app APP ..."`; the login shell, git-shell, finds the gate in
~/git-shell-commands). What the client asked for is in SSH_ORIGINAL_COMMAND:
the gate splits it as git-shell does (quotes and backslashes, never a shell),
checks the command against the key's role and every app it names against the
key's apps, and then execs the tool, or git, with DEPLOY_KEY=NAME in its
environment (deploy.log records it). A refusal is one line naming the key,
the command and the app, and exit status 1.

Roles, each a superset of the one before (fleet stands apart):
  push     git push and fetch of its apps, deploy-status, deploy-logs
  operate  also deploy-version (rollback), deploy-config, deploy-cleanup,
           deploy-scale, deploy-maintenance
  run      also deploy-run: a shell as the deploy account
  fleet    what a fleet deploy runs on a host: git push, deploy-version
           (prepare, commit, abort, the rollback) and deploy-status
  controller  on a fleet's primary, the deploy account's key to the
           controller account: git push into its copy, deploy-fleet,
           deploy-status --fleet
"""
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass

from . import DeployError
from .layout import check_app_name
from .paths import BIN_DIR
from .settings import load

GATE = "deploy-gate"
KEY_VARIABLE = "DEPLOY_KEY"     # set for what the gate runs: the key's name
GIT_COMMANDS = {"git-receive-pack": "receive-pack", "git-upload-pack": "upload-pack"}
PUSH = ("git-receive-pack", "git-upload-pack", "deploy-status", "deploy-logs")
OPERATE = PUSH + ("deploy-version", "deploy-config", "deploy-cleanup", "deploy-scale", "deploy-maintenance")
ROLES = {
    "push": PUSH,
    "operate": OPERATE,
    "run": OPERATE + ("deploy-run",),
    "fleet": ("git-receive-pack", "deploy-version", "deploy-status"),
    # the fleet controller's account (controller.py): what the primary's deploy account asks of it
    "controller": ("git-receive-pack", "deploy-fleet", "deploy-status"),
}
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
HELP_OPTIONS = frozenset({"-h", "--help"})


def check_key_name(name):
    if not KEY_NAME.match(name or ""):
        raise DeployError(f"invalid key name {name!r}: use up to 64 letters, digits, '_', '.', '@' and '-', "
                          "starting with a letter or digit")
    return name


def key_of(environ):
    """The key a deploy was asked for with (DEPLOY_KEY, set by the gate), or
    None (an unscoped key, a local push); a value that is not a key name is refused."""
    name = environ.get(KEY_VARIABLE)
    if name is None:
        return None
    if not KEY_NAME.match(name):
        raise DeployError(f"{KEY_VARIABLE} is not a key name: refusing to record it in deploy.log")
    return name


@dataclass(frozen=True)
class Scope:
    """A key: its name, role and apps."""
    name: str
    role: str
    apps: tuple

    @classmethod
    def checked(cls, name, role, apps):
        check_key_name(name)
        if role not in ROLES:
            raise DeployError(f"key {name}: unknown role {role!r} (one of {', '.join(ROLES)})")
        if not apps:
            raise DeployError(f"key {name}: give at least one --app")
        for app in apps:
            check_app_name(app)
        return cls(name, role, tuple(dict.fromkeys(apps)))

    def gate_args(self):
        return ["--key", self.name, "--role", self.role] + [a for app in self.apps for a in ("--app", app)]

    @property
    def commands(self):
        return ROLES[self.role]

    def refuse(self, command, app=None, why=None):
        what = f"{command} for {app}" if app else command
        raise DeployError(f"key {self.name} ({self.role}) may not run {what}: "
                          + (why or f"role {self.role} runs {', '.join(self.commands)}"))


@dataclass(frozen=True)
class Grammar:
    """How a tool's arguments name the app; anything else it is given is refused."""
    flags: frozenset = frozenset()     # options without a value
    valued: frozenset = frozenset()    # options that take the next word
    app_option: str = None             # the app is this option's value, not the first positional
    app_optional: bool = False         # no app given: the key's only app is added (every app otherwise)
    rest: bool = False                 # APP first, then anything (a command, a process count)


GRAMMARS = {
    "deploy-status": Grammar(flags=frozenset({"--json", "--fleet"}), app_optional=True),
    "deploy-logs": Grammar(flags=frozenset({"-f", "--follow", "--raw"}),
                           valued=frozenset({"-n", "--lines", "--process"})),
    "deploy-config": Grammar(),
    "deploy-version": Grammar(flags=frozenset({"--previous", "--prepare", "--commit", "--abort", "--undo",
                                               "--no-setup"}), valued=frozenset({"--until"})),
    "deploy-cleanup": Grammar(flags=frozenset({"--dry-run"}), valued=frozenset({"--app"}), app_option="--app",
                              app_optional=True),
    "deploy-run": Grammar(rest=True),
    "deploy-fleet": Grammar(valued=frozenset({"--batch", "--ref", "--start-by"})),
    "deploy-scale": Grammar(rest=True),
    "deploy-maintenance": Grammar(rest=True),
}


def tool_argv(scope, command, args):
    """The checked arguments for one of the deploy tools: the app named
    must be one of the key's; a tool that would act on every app gets the
    key's app added, or is refused when the key has several."""
    grammar = GRAMMARS[command]
    if grammar.rest:
        if not args or args[0] in HELP_OPTIONS:
            return args[:1]
        if args[0].startswith("-"):
            scope.refuse(command, why=f"the app comes first ({command} APP ...)")
        check_app(scope, command, args[0])
        return args
    positionals, named, words = [], [], list(args)
    while words:
        word = words.pop(0)
        if not word.startswith("-") or word == "-":
            positionals.append(word)
        elif word in HELP_OPTIONS or word in grammar.flags:
            continue
        elif word in grammar.valued and words and not words[0].startswith("-"):
            value = words.pop(0)
            if word == grammar.app_option:
                named.append(value)
        else:
            scope.refuse(f"{command} {word}", why="not an option a scoped key may give "
                         "(give options in full, a value as the next word)")
    apps = named if grammar.app_option else positionals[:1]
    if len(apps) > 1:
        scope.refuse(command, apps[-1], why=f"name one app, once ({grammar.app_option} APP)")
    if apps:
        check_app(scope, command, apps[0])
        return args
    if not grammar.app_optional or HELP_OPTIONS & set(args):
        return args                    # the tool says what is missing
    if len(scope.apps) != 1:
        scope.refuse(command, why=f"without an app it acts on every app; name one of {', '.join(scope.apps)}")
    return args + ([grammar.app_option, scope.apps[0]] if grammar.app_option else [scope.apps[0]])


def check_app(scope, command, app):
    try:
        check_app_name(app)
    except DeployError:
        scope.refuse(command, app, why=f"{app!r} is not an app name (this key's apps: {', '.join(scope.apps)})")
    if app not in scope.apps:
        scope.refuse(command, app, why=f"its apps are {', '.join(scope.apps)}")


def repository_app(scope, command, path, home):
    """The app a git command's repository path names: APP.git, APP, ~/APP.git
    or HOME/APP.git (what git clients send), never another directory."""
    name = path
    if name.startswith("~/"):
        name = name[2:]
    elif name.startswith("/"):
        if not name.startswith(home.rstrip("/") + "/"):
            scope.refuse(command, path, why="not a repository of the deploy home")
        name = name[len(home.rstrip("/")) + 1:]
    name = name.rstrip("/")
    name = name[:-len(".git")] if name.endswith(".git") else name
    check_app(scope, command, name)
    return name


def command_words(line):
    """SSH_ORIGINAL_COMMAND split as git-shell splits it: quotes and
    backslashes, nothing else (`;`, `|`, `$(...)` stay plain characters)."""
    try:
        return shlex.split(line)
    except ValueError as error:
        raise DeployError(f"cannot split the command: {error}") from None


def resolve(scope, line, settings):
    """(program path, argv) for the command line asked for; raises a refusal."""
    words = command_words(line)
    if not words:
        scope.refuse("an empty command")
    command, args = words[0], words[1:]
    if command == "git" and args and f"git-{args[0]}" in GIT_COMMANDS:   # `git receive-pack 'app.git'`
        command, args = f"git-{args[0]}", args[1:]
    if command not in scope.commands:
        scope.refuse(shlex.quote(command))
    if command in GIT_COMMANDS:
        if len(args) != 1:
            scope.refuse(command, why="it takes one repository")
        app = repository_app(scope, command, args[0], settings.home)
        git = shutil.which("git", path=os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/bin")
        if git is None:
            raise DeployError("git not found")
        repo = os.path.join(settings.home, app + ".git")
        return git, ["git", GIT_COMMANDS[command], repo]
    return os.path.join(BIN_DIR, command), [command] + tool_argv(scope, command, args)


def help_lines(scope):
    from .shell_commands import COMMANDS
    lines = [f"Key {scope.name} ({scope.role}) for {', '.join(scope.apps)} may run:"]
    if "git-receive-pack" in scope.commands:
        lines.append("  git push" + (" and fetch" if "git-upload-pack" in scope.commands else ""))
    width = max(len(f"{name} {usage}") for name, usage, _ in COMMANDS)
    lines += [f"  {f'{name} {usage}':<{width}}  {what}" for name, usage, what in COMMANDS if name in scope.commands]
    return lines


def gate(key, role, apps, environ=None, out=None):
    """deploy-gate: run SSH_ORIGINAL_COMMAND if the key may; with none (an
    interactive login), say what the key may run."""
    environ = os.environ if environ is None else environ
    scope = Scope.checked(key, role, apps or [])
    line = environ.get("SSH_ORIGINAL_COMMAND")
    if line is None:
        (out or sys.stdout).write("\n".join(help_lines(scope)) + "\n")
        return 0
    program, argv = resolve(scope, line, load(environ))
    env = dict(environ, **{KEY_VARIABLE: scope.name})
    env.pop("SSH_ORIGINAL_COMMAND", None)
    sys.stdout.flush()
    os.execve(program, argv, env)
