"""Where the toolkit's own files are; `make install` rewrites SHARE_DIR and BIN_DIR."""
import os

SHARE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "share")  # SHAREDIR
BIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bin")  # BINDIR


def share(*parts):
    return os.path.normpath(os.path.join(SHARE_DIR, *parts))


def tools_first(path):
    """A PATH with the toolkit's tools first: a setup script calls deploy-venv
    by name, whatever PATH the push arrived with (git-shell's is minimal)."""
    return os.pathsep.join([os.path.normpath(BIN_DIR), path or os.defpath])
