"""Where the toolkit's own files are; `make install` rewrites SHARE_DIR."""
import os

SHARE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "share")  # SHAREDIR


def share(*parts):
    return os.path.normpath(os.path.join(SHARE_DIR, *parts))
