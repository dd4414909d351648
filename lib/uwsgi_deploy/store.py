"""An app's content store, ~/APP.store: every file any of its versions
checked out, once, named by its git blob id (ab/cdef…, and ab/cdef….x for an
executable). A version's files are hard links to it (checkout.py), so a push
writes only what changed and versions share the rest.

Store files are read-only (0444, 0555 for executables, less the umask): a
version cannot write into another's files through a shared inode (root can;
the deploy account must not be root). Content is written under
.tmp-PID/ and renamed into place once whole, so a deploy killed at any moment
leaves nothing under a blob's name that is not that blob; recovery removes
the .tmp-PID directories (remove_temporaries).

A store file whose link count is 1 is used by no version: deploy-cleanup
removes those (collect) and counts the blocks it frees (st_blocks), and
deploy-status shows what each version uses alone (usage)."""
import collections
import errno
import os
import re
import shutil
import stat

EXECUTABLE_SUFFIX = b".x"
TEMPORARY = re.compile(r"\.tmp-[0-9]+\Z")
BLOCK = 512   # st_blocks counts 512-byte units


def current_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class ContentStore:
    def __init__(self, root):
        self.root = root
        umask = current_umask()
        self.modes = {False: 0o444 & ~umask, True: 0o555 & ~umask}
        self._temporary = None
        self._fanouts = set()

    def key(self, blob, executable):
        """A blob's name in the store, relative to its root (bytes, as
        the object id blob is: the checkout names 20,000 of them)."""
        name = blob[:2] + b"/" + blob[2:]
        return name + EXECUTABLE_SUFFIX if executable else name

    def path(self, key):
        return os.path.join(self.root, os.fsdecode(key))

    def temporary_dir(self, pid=None):
        return os.path.join(self.root, f".tmp-{os.getpid() if pid is None else pid}")

    def open_root(self):
        """A descriptor of the root (created if need be), for links relative to it."""
        os.makedirs(self.root, exist_ok=True)
        return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)

    def add(self, key, executable, chunks, on_point=None):
        """Write the content chunks yields (bytes) under key: into the
        temporary directory first, renamed into place once whole.
        on_point("store-write") is called once some of it is written."""
        if self._temporary is None:
            self._temporary = self.temporary_dir()
            shutil.rmtree(self._temporary, ignore_errors=True)
            os.makedirs(self._temporary)
        key = os.fsdecode(key)
        temporary = os.path.join(self._temporary, key.replace("/", ""))
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.modes[executable])
        with os.fdopen(fd, "wb") as stream:
            for index, chunk in enumerate(chunks):
                stream.write(chunk)
                if index == 0 and on_point:
                    stream.flush()
                    on_point("store-write")
        fanout = key.split("/", 1)[0]
        if fanout not in self._fanouts:
            os.makedirs(os.path.join(self.root, fanout), exist_ok=True)
            self._fanouts.add(fanout)
        os.rename(temporary, self.path(key))

    def finish(self):
        """Remove this process's (now empty) temporary directory."""
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    # -- what is in it -----------------------------------------------------
    def files(self):
        """(path, os.stat_result) of every stored file."""
        if not os.path.isdir(self.root):
            return
        for fanout in sorted(os.listdir(self.root)):
            directory = os.path.join(self.root, fanout)
            if TEMPORARY.match(fanout) or not os.path.isdir(directory):
                continue
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                try:
                    yield path, os.lstat(path)
                except FileNotFoundError:
                    continue

    def directory_bytes(self):
        """Bytes on disk of the store's own directories (root and fan-out)."""
        total = 0
        names = os.listdir(self.root) if os.path.isdir(self.root) else []
        for path in [self.root] + [os.path.join(self.root, n) for n in names]:
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                total += info.st_blocks * BLOCK
        return total

    def temporaries(self):
        """The .tmp-PID directories deploys write content in."""
        names = os.listdir(self.root) if os.path.isdir(self.root) else []
        return [os.path.join(self.root, n) for n in sorted(names) if TEMPORARY.match(n)]


def remove_temporaries(store):
    """What a dead deploy was writing: never linked by any version. The
    caller holds the app's lock, so no deploy writes there now."""
    for path in store.temporaries():
        shutil.rmtree(path, ignore_errors=True)


def collect(store, dry_run=False, leaving=None):
    """Remove the store's files no version uses (link count 1); with dry_run,
    only count them. leaving: Counter {inode: links} of the versions about
    to be removed (a dry run's, still on disk). Returns (files, bytes freed)."""
    leaving = leaving or {}
    files = freed = 0
    for path, info in list(store.files()):
        if info.st_nlink - leaving.get((info.st_dev, info.st_ino), 0) > 1:
            continue
        files += 1
        freed += info.st_blocks * BLOCK
        if not dry_run:
            os.unlink(path)
    return files, freed


def tree_inodes(root):
    """{(dev, inode): (links within root, st_blocks bytes, st_nlink)} of
    everything under root, root included."""
    found = {}

    def note(info):
        key = (info.st_dev, info.st_ino)
        seen = found.get(key)
        # a directory's link count counts its sub-directories: it is the tree's own
        nlink = 1 if stat.S_ISDIR(info.st_mode) else info.st_nlink
        found[key] = ((seen[0] if seen else 0) + 1, info.st_blocks * BLOCK, nlink)
    try:
        note(os.lstat(root))
    except FileNotFoundError:
        return found
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                note(os.lstat(os.path.join(directory, name)))
            except FileNotFoundError:
                continue
    return found


def own_bytes(inodes):
    """What removing a tree frees at once: its inodes with no link elsewhere."""
    return sum(size for links, size, nlink in inodes.values() if links >= nlink)


def link_counts(inodes):
    """Counter {inode: links within the tree}, for collect's leaving."""
    return collections.Counter({key: links for key, (links, _size, _nlink) in inodes.items()})


def usage(store, workdirs):
    """Disk use of an app's versions: ({workdir: bytes it uses alone}, total
    bytes of the versions and the store, each inode counted once). Alone:
    what removing that version, then collecting the store, would free."""
    per_version = {w: tree_inodes(w) for w in workdirs}
    in_store = {(info.st_dev, info.st_ino): info.st_blocks * BLOCK for _path, info in store.files()}
    total = {}
    for inodes in per_version.values():
        total.update({key: size for key, (_links, size, _nlink) in inodes.items()})
    total.update(in_store)
    alone = {}
    for workdir, inodes in per_version.items():
        alone[workdir] = sum(size for key, (links, size, nlink) in inodes.items()
                             if nlink - links <= (1 if key in in_store else 0))
    return alone, sum(total.values()) + store.directory_bytes()


def link_or_copy(source, destination, src_dir_fd=None, dst_dir_fd=None):
    """A hard link; a copy when the inode has as many links as the file
    system allows (EMLINK: ext4's 65,000)."""
    try:
        os.link(source, destination, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
    except OSError as error:
        if error.errno != errno.EMLINK:
            raise
        source_fd = os.open(source, os.O_RDONLY, dir_fd=src_dir_fd)
        try:
            mode = stat.S_IMODE(os.fstat(source_fd).st_mode)
            target_fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode, dir_fd=dst_dir_fd)
            with os.fdopen(target_fd, "wb") as target, os.fdopen(source_fd, "rb", closefd=False) as stream:
                shutil.copyfileobj(stream, target)
        finally:
            os.close(source_fd)
