"""Where the toolkit's own files are (`make install` rewrites SHARE_DIR and
BIN_DIR), and the uwsgi binary it runs."""
import os
import shutil

from . import DeployError

SHARE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "share")  # SHAREDIR
BIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bin")  # BINDIR


def share(*parts):
    return os.path.normpath(os.path.join(SHARE_DIR, *parts))


def uwsgi_binary(path=None):
    """The uwsgi on PATH (or on the given search path)."""
    uwsgi = shutil.which("uwsgi", path=path)
    if not uwsgi:
        raise DeployError("uwsgi not found on PATH (install uwsgi-core and uwsgi-plugin-python3)")
    return uwsgi


def tools_first(path):
    """A PATH with the toolkit's tools first: a setup script calls deploy-venv
    by name, whatever PATH the push arrived with (git-shell's is minimal)."""
    return os.pathsep.join([os.path.normpath(BIN_DIR), path or os.defpath])
