"""The Emperor: started from share/emperor.ini with the DEPLOY_* settings,
after what dead deploys left is swept away. (Talking to a running Emperor is
stats.py.)"""
import os
import sys

from .layout import create_directories
from .paths import share, uwsgi_binary
from .recovery import sweep_all


def prepare_emperor(settings, extra_args=()):
    """Make the layout's directories, sweep what dead deploys left (so the Emperor
    starts no stale candidate), and return the argv and environment that run
    the Emperor for these settings."""
    uwsgi = uwsgi_binary()
    create_directories(settings)
    sweep_all(settings, lambda text: print(f"deploy-emperor: {text}", file=sys.stderr))
    environ = dict(os.environ,
                   DEPLOY_VASSALS_DIR=settings.vassals_dir,
                   DEPLOY_EMPEROR_STATS=settings.emperor_stats)
    return [uwsgi, "--ini", share("emperor.ini"), *extra_args], environ


def run_emperor(settings, extra_args=()):
    """deploy-emperor: become the Emperor (exec), so a service manager's
    signals reach uWSGI itself."""
    argv, environ = prepare_emperor(settings, extra_args)
    os.execve(argv[0], argv, environ)
