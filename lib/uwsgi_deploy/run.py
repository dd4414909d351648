"""deploy-run: a one-off command (a migration, a management command) run the
way the live version runs: in the directory it runs in, with its variables
(the repository's environment.sh, ~/environment.sh, ~/APP.env), and with its
Python environment (a `.venv` there) first on PATH.

The command replaces this process, so its output streams as it is written,
its exit status is ours, it reads our stdin and needs no terminal. Its
arguments go to it as they are: no shell ever sees them."""
import os
import sys

from . import DeployError
from .checkout import clean_environ, deploy_dir
from .envfile import read_env_files
from .inventory import selected_apps
from .settings import load
from .uwsgi_ini import LOCALE_CHOOSERS, LOCALE_DEFAULT

NOT_FOUND, NOT_EXECUTABLE = 127, 126   # as a shell reports them


def command_environ(app, version, base_environ):
    """The variables the version's vassal gets, on top of base_environ, and
    its virtualenv (a `.venv` in its directory) activated."""
    directory = deploy_dir(version.workdir)
    repo_env = os.path.join(directory, "environment.sh")
    base = clean_environ(base_environ)
    entries = read_env_files(app.env_files(repo_env), base)
    environ = dict(base)
    if not LOCALE_CHOOSERS & set(entries):
        environ.setdefault(*LOCALE_DEFAULT)
    environ.update({name: entry.value for name, entry in entries.items()})
    venv = os.path.join(directory, ".venv")
    if os.path.isdir(venv):
        environ["VIRTUAL_ENV"] = venv
        environ["PATH"] = os.pathsep.join([os.path.join(venv, "bin"), environ.get("PATH") or os.defpath])
        environ.pop("PYTHONHOME", None)
    return directory, environ


def run_command(app_name, command, environ=None):
    """deploy-run APP -- CMD [ARGS...]: exec CMD; returns only if it cannot start."""
    environ = os.environ if environ is None else environ
    settings = load(environ)
    [app] = selected_apps(settings, app_name)
    live = app.live_version()
    if live is None:
        raise DeployError(f"nothing of {app.name} is live: deploy it first (git push)")
    directory, command_env = command_environ(app, live, environ)
    os.chdir(directory)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, command_env)
    except FileNotFoundError:
        print(f"deploy-run: {command[0]}: command not found in {command_env['PATH']}", file=sys.stderr)
        return NOT_FOUND
    except PermissionError:
        print(f"deploy-run: {command[0]}: permission denied", file=sys.stderr)
        return NOT_EXECUTABLE
