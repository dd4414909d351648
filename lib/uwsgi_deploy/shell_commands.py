"""The operator commands the deploy key may run over ssh, besides git.

The account's login shell is git-shell. Given a command line, git-shell splits
it itself (quotes and backslashes, no shell: no `;`, `|`, `$(...)`) and runs
~/git-shell-commands/<first word> with the other words as arguments, or
refuses. Run with no command (an interactive ssh), it runs `help` there, then
prompts for those commands. So ~/git-shell-commands holds one link per
operator tool, to the installed tool, plus `help`."""
import getpass
import os
import socket
import sys

from . import DeployError
from .links import switch_symlink

DIRECTORY = "git-shell-commands"
HELP = "help"
HELP_TOOL = "deploy-commands"   # what `help` runs: prints COMMANDS

# name, usage, what it does: one line each in `help`
COMMANDS = (
    ("deploy-status", "[APP] [--json] [--fleet]",
     "what runs: live version, /ping, versions, deploys; --fleet: on each host"),
    ("deploy-version", "--previous APP | APP REV", "roll back; --prepare/--commit/--abort: a fleet's phases"),
    ("deploy-logs", "APP [REV] [-n N] [-f] [--raw]", "the tail of the live (or REV's) uWSGI log; -f follows deploys"),
    ("deploy-config", "APP [set NAME | unset NAME]", "the app's variable names; set reads the value from stdin"),
    ("deploy-cleanup", "[N] [--dry-run] [--app APP]", "remove all but the N latest versions of each app"),
    ("deploy-run", "APP -- CMD [ARGS...]", "run a one-off command as the live version would"),
)


def help_text(account=None, host=None):
    where = f"{account or 'ACCOUNT'}@{host or 'HOST'}"
    width = max(len(f"{name} {usage}") for name, usage, _ in COMMANDS)
    lines = [f"Commands (ssh {where} COMMAND ...; git push and fetch work as usual):"]
    lines += [f"  {f'{name} {usage}':<{width}}  {what}" for name, usage, what in COMMANDS]
    return "\n".join(lines) + "\n"


def wanted_links(bin_dir):
    """{entry in ~/git-shell-commands: the installed tool it runs}."""
    links = {name: os.path.join(bin_dir, name) for name, _, _ in COMMANDS}
    links[HELP] = os.path.join(bin_dir, HELP_TOOL)
    return links


def install_shell_commands(home, bin_dir):
    """Create or update ~/git-shell-commands: a link per operator command to the
    tool in bin_dir (so upgrading the toolkit upgrades them). Returns the
    entries it changed; running it again changes nothing. An entry that is not
    a link is the operator's own: it is left alone with an error."""
    directory = os.path.join(home, DIRECTORY)
    links = wanted_links(bin_dir)
    for name, target in links.items():   # all checked before anything changes
        path = os.path.join(directory, name)
        if os.path.lexists(path) and not os.path.islink(path):
            raise DeployError(f"{path} exists and is not a link to the toolkit; move it away first")
        if not os.access(target, os.X_OK):
            raise DeployError(f"{target}: not an installed tool (run make install first)")
    os.makedirs(directory, mode=0o750, exist_ok=True)
    changed = []
    for name, target in links.items():
        path = os.path.join(directory, name)
        if not (os.path.islink(path) and os.readlink(path) == target):
            switch_symlink(path, target)
            changed.append(name)
    return changed


def account_home(environ):
    """Where git-shell looks: the account's $HOME (not DEPLOY_HOME)."""
    return environ.get("HOME") or os.path.expanduser("~")


def commands(install, bin_dir, environ=None, out=None):
    """deploy-commands: print the list, or (--install) write ~/git-shell-commands."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    if not install:
        out.write(help_text(getpass.getuser(), socket.gethostname()))   # no DNS lookup: it runs at each login
        return
    home = account_home(environ)
    changed = install_shell_commands(home, bin_dir)
    directory = os.path.join(home, DIRECTORY)
    out.write(f"wired {directory}: {', '.join(changed)}\n" if changed else f"{directory} is up to date\n")
