"""Symlinks switched atomically: a fresh link renamed over the old one.

rename(2) replaces the name in one step, so nginx (which resolves the live
socket's symlink on every connection) never finds it missing; unlink-then-
symlink leaves a gap that costs requests."""
import os

from .layout import temporary_link


def switch_symlink(link, target):
    """Point link at target (kept relative when both share a directory)."""
    if os.path.dirname(os.path.abspath(target)) == os.path.dirname(os.path.abspath(link)):
        target = os.path.basename(target)
    temporary = temporary_link(link)
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass
    os.symlink(target, temporary)
    os.rename(temporary, link)


def remove_if_exists(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
