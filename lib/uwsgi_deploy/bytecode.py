"""Compiled Python of unchanged sources, reused from the version live before.

Nothing in the pipeline compiles: Python writes a module's bytecode into
__pycache__ beside it at its first import (the candidate's, in the probe),
and trusts it while the source's mtime and size match what it recorded. A
new version's unchanged source is a hard link to the very file the previous
version's is (store.py): same mtime, same size. So the previous version's
.pyc is valid for it as it is, and a link to it saves the compile (figures
in docs/disk.md). A source that changed is another file: its .pyc is not
taken, and Python compiles it.

A linked .pyc is shared from then on, so it is made read-only first; Python
never writes one in place (it writes a new file and renames it over)."""
import os
import stat

CACHE = b"__pycache__"


def reuse_compiled(previous, workdir_fd, directories):
    """Link previous/DIR/__pycache__/MODULE.*.pyc into the checkout open as
    workdir_fd, for every DIR of directories (relative, bytes) whose
    MODULE.py is the same file in both. Returns how many were linked."""
    reused = 0
    previous = os.path.realpath(os.fsencode(previous))
    for directory in sorted(directories):
        old_dir = os.path.join(previous, directory)
        old_cache = os.path.join(old_dir, CACHE)
        # no link anywhere on the way: what is read is the previous version's own
        if os.path.realpath(old_cache) != os.path.normpath(old_cache) or not os.path.isdir(old_cache):
            continue
        made = False
        for name in sorted(os.listdir(old_cache)):
            source = name.split(b".", 1)[0] + b".py"
            if not name.endswith(b".pyc") or not _same_file(os.path.join(old_dir, source),
                                                            os.path.join(directory, source), workdir_fd):
                continue
            compiled = os.path.join(old_cache, name)
            info = os.lstat(compiled)
            if not stat.S_ISREG(info.st_mode):
                continue
            if not made:
                try:   # only into a __pycache__ made here: never one the tree has (or links)
                    os.mkdir(os.path.join(directory, CACHE), dir_fd=workdir_fd)
                except FileExistsError:
                    break
                made = True
            if info.st_mode & 0o222:
                os.chmod(compiled, stat.S_IMODE(info.st_mode) & ~0o222)
            os.link(compiled, os.path.join(directory, CACHE, name), dst_dir_fd=workdir_fd)
            reused += 1
    return reused


def _same_file(old, new, new_dir_fd):
    try:
        before, after = os.lstat(old), os.stat(new, dir_fd=new_dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return stat.S_ISREG(before.st_mode) and (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
