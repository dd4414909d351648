"""The Emperor: starting it from share/emperor.ini, and asking it to rescan."""
import json
import os
import shutil
import socket
import sys

from . import DeployError
from .paths import share


def uwsgi_binary(path=None):
    """The uwsgi on PATH (or on the given search path)."""
    uwsgi = shutil.which("uwsgi", path=path)
    if not uwsgi:
        raise DeployError("uwsgi not found on PATH (install uwsgi-core and uwsgi-plugin-python3)")
    return uwsgi


def prepare_emperor(settings, extra_args=()):
    """Make the layout's directories, sweep what dead deploys left (so the Emperor
    starts no stale candidate), and return the argv and environment that run
    the Emperor for these settings."""
    uwsgi = uwsgi_binary()
    for directory in (settings.vassals_dir, settings.run_dir, settings.log_dir):
        os.makedirs(directory, exist_ok=True)
    from .recovery import sweep_all   # recovery needs vassal, which needs this module
    sweep_all(settings, lambda text: print(f"deploy-emperor: {text}", file=sys.stderr))
    environ = dict(os.environ,
                   DEPLOY_VASSALS_DIR=settings.vassals_dir,
                   DEPLOY_EMPEROR_STATS=settings.emperor_stats)
    return [uwsgi, "--ini", share("emperor.ini"), *extra_args], environ


def read_stats(address, timeout=2.0):
    """The JSON a uWSGI stats socket (unix path) sends; None if nobody listens.

    Connecting to the Emperor's stats socket also wakes its loop, which then
    rescans the vassals directory at once instead of at the next tick."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        sock.close()
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return None


def poke(settings):
    """Make the Emperor rescan now; returns its stats (or None without one)."""
    return read_stats(settings.emperor_stats)


def vassal_state(stats, ini_name):
    """The Emperor's record of a vassal (by ini file name), or None."""
    for vassal in (stats or {}).get("vassals", []):
        if vassal.get("id") == ini_name:
            return vassal
    return None
