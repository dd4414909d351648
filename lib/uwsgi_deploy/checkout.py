"""Getting a version onto disk from git, and finding its deploy files.

A checkout lists the commit's tree (git ls-tree) and hard-links its files
from the app's content store, which receives from one git cat-file only the
content it lacks (store.py, docs/disk.md). Git runs through `sh`, or
subprocess where its output is bytes. Inside a pre-receive hook the pushed
objects are only reachable through the hook's GIT_* variables, so git sees
them; setup and the app never do (clean_environ)."""
import errno
import os
import shutil
import subprocess
import threading
import time

from . import DeployError, error_line
from .bytecode import reuse_compiled
from .store import ContentStore, link_or_copy
from .tree import blob_sizes, list_tree, write_record

ZERO_COMMIT = "0" * 40


def clean_environ(environ):
    """environ without the hook's GIT_* variables."""
    return {k: v for k, v in environ.items() if not k.startswith("GIT_")}


def _sh():
    """The sh module, imported only when a command runs: its import costs
    tens of milliseconds that a tool running no command should not pay."""
    import sh
    return sh


def _last_line(err):
    if isinstance(err, _sh().ErrorReturnCode):
        lines = err.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit status {err.exit_code}"
    return str(err)


def git(git_dir, *args):
    sh = _sh()
    try:
        return str(sh.git("--git-dir", git_dir, *args)).strip()
    except sh.ErrorReturnCode as err:
        raise DeployError(f"git {args[0]}: {_last_line(err)}") from None


# Both deploy when nothing narrows it, as on Heroku: git's own default branch
# is still master on many systems, and deploy-init's is main.
DEFAULT_BRANCHES = ("refs/heads/main", "refs/heads/master")


def deploy_branch_refs(git_dir, configured):
    """The refs that deploy, first one preferred: DEPLOY_BRANCH when set; else
    the branch the repository's HEAD names, with main and master counting as
    one (both deploy) when HEAD names either."""
    if configured:
        return [configured if configured.startswith("refs/") else "refs/heads/" + configured]
    head = git(git_dir, "symbolic-ref", "HEAD")
    if head in DEFAULT_BRANCHES:
        return [head] + [ref for ref in DEFAULT_BRANCHES if ref != head]
    return [head]


def branch_names(refs):
    """'main or master', for messages."""
    return " or ".join(ref.removeprefix("refs/heads/") for ref in refs)


MIB = 1024 * 1024
PROGRESS_EVERY = 1.0    # seconds between the lines a long checkout prints
CHUNK = 1024 * 1024     # bytes read from git at a time
NOT_PLAIN = (b"", b".", b"..")
EXECUTABLE, SYMLINK = b"100755", b"120000"


def check_size(listing, max_mb):
    """Refuse a tree whose files add up to more than max_mb MiB (0: no
    limit): the pack's limit (receive.maxInputSize) does not bound what it
    checks out to, since one zero blob may be named a thousand times."""
    if max_mb and listing.total > max_mb * MIB:
        raise DeployError(f"{listing.commit[:12]} checks out to {listing.total / MIB:,.0f} MiB in "
                          f"{listing.entries:,} files, over DEPLOY_CHECKOUT_MAX_MB ({max_mb:,} MiB); "
                          "nothing was written")


def export_tree(git_dir, commit, version, max_mb=0, say=None, on_point=None, previous=None):
    """Write commit's tree (no .git) to version's workdir, all or nothing:
    built in a hidden sibling, then renamed into place. Files are hard links
    into the app's content store (store.py), which receives only content it
    lacks; directories are the version's own. Refused before anything is
    written when it would check out to more than max_mb MiB. say(line)
    reports progress while content is written, and what was linked and
    written; on_point("store-write") is called within each write. previous:
    the workdir of the version live now: its record spares sizing the
    files that did not change (tree.py), and its compiled Python is reused
    for sources that did not change (bytecode.py)."""
    listing = list_tree(git_dir, commit, previous)
    check_size(listing, max_mb)
    destination, temporary = version.workdir, version.checkout_temporary()
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    try:
        extraction = Extraction(git_dir, ContentStore(version.app.store_dir), temporary, say, on_point)
        extraction.run(listing, previous)
        write_record(temporary, listing)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(error, (DeployError, OSError)):
            raise DeployError(f"cannot export {commit[:12]}: {error_line(error)}") from None
        raise
    shutil.rmtree(destination, ignore_errors=True)
    os.rename(temporary, destination)
    return extraction


class Extraction:
    """Links a tree's files into a directory from the store, writing into
    the store first what it lacks (read from one `git cat-file --batch`).
    The work per file is one link(2) and what Python needs to name it."""

    def __init__(self, git_dir, store, directory, say=None, on_point=None):
        self.git_dir, self.store, self.directory = git_dir, store, directory
        self.say = say or (lambda text: None)
        self.on_point = on_point
        self.linked = self.written = self.written_bytes = 0
        self.made = set()   # directories created, relative
        self.python_dirs = set()   # those holding a .py file
        self.compiled = 0

    def run(self, listing, previous=None):
        """listing: the tree's (tree.Listing)."""
        self.store_fd = self.store.open_root()
        self.target_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            missing, symlinks = self.link_present(listing.records)
            self.fetch(missing, symlinks, listing.sizes)
            if previous and os.path.isdir(previous):
                self.compiled = reuse_compiled(previous, self.target_fd, self.python_dirs)
        finally:
            os.close(self.store_fd)
            os.close(self.target_fd)
            self.store.finish()
        self.say(f"{listing.entries:,} files: {self.linked:,} already stored, {self.written:,} new "
                 f"({self.written_bytes / MIB:,.1f} MiB written to {self.store.root})"
                 + (f"; {self.compiled:,} compiled modules reused" if self.compiled else ""))

    def place(self, path):
        """Create path's missing parent directories (the caller skips those
        whose parent is made and whose name is plain). Never through a link:
        each one is created here, so a tree naming a path twice (a file and a
        directory, a link and a directory) is refused, as is a name that is
        not plain."""
        parts = path.split(b"/")
        if any(part in NOT_PLAIN for part in parts):
            raise DeployError(f"the tree has a path that is not plain: {os.fsdecode(path)!r}")
        for end in range(1, len(parts)):
            parent = b"/".join(parts[:end])
            if parent in self.made:
                continue
            try:
                os.mkdir(parent, dir_fd=self.target_fd)
            except FileExistsError:
                raise DeployError(f"the tree names {os.fsdecode(parent)} twice") from None
            self.made.add(parent)

    def link_present(self, records):
        """Make the directories, and link every file the store has, in
        one pass; return what the store lacks ({store key: (blob,
        executable, [paths])}) and the symlinks ([(blob, path)]), whose
        target is content."""
        made, python_dirs, key = self.made, self.python_dirs, self.store.key
        store_fd, target_fd, link = self.store_fd, self.target_fd, os.link
        missing, symlinks, files = {}, [], 0
        for record in records:
            meta, _, path = record.partition(b"\t")
            mode, kind, blob = meta.split(None, 3)[:3]
            parent, _, leaf = path.rpartition(b"/")
            if parent not in made or leaf in NOT_PLAIN:
                self.place(path)
            if kind != b"blob":
                if kind != b"commit":
                    raise DeployError(f"{os.fsdecode(path)}: unexpected {kind.decode()} in the tree")
                os.mkdir(path, dir_fd=target_fd)   # a submodule: an empty directory, as git archive has it
                made.add(path)
                continue
            if mode == SYMLINK:
                symlinks.append((blob, path))
                continue
            name = key(blob, mode == EXECUTABLE)
            try:
                link(name, path, src_dir_fd=store_fd, dst_dir_fd=target_fd)
            except FileNotFoundError:   # not in the store yet
                missing.setdefault(name, (blob, mode == EXECUTABLE, []))[2].append(path)
            except OSError as error:
                if error.errno != errno.EMLINK:
                    raise
                link_or_copy(name, path, src_dir_fd=store_fd, dst_dir_fd=target_fd)
            if path.endswith(b".py"):
                python_dirs.add(parent)
            files += 1
        self.linked += files - sum(len(paths) for _blob, _executable, paths in missing.values())
        return missing, symlinks

    def fetch(self, missing, symlinks, sizes):
        """Store what was missing and link it; make the symlinks. sizes:
        {blob: size} already known (the others are asked of git)."""
        wanted = [(blob, name) for name, (blob, _executable, _paths) in missing.items()] + \
            [(blob, None) for blob, _path in symlinks]
        if not wanted:
            return
        sizes = {**sizes, **blob_sizes(self.git_dir, [b for b, name in wanted if name and b not in sizes])}
        progress = Progress(self.say, len(missing), sum(sizes[b] for b, name in wanted if name))
        links = iter(path for _blob, path in symlinks)
        with CatFile(self.git_dir, [blob for blob, _name in wanted]) as objects:
            for blob, name in wanted:
                chunks = objects.read(blob)
                if name is None:
                    os.symlink(b"".join(chunks), next(links), dir_fd=self.target_fd)
                    self.linked += 1
                    continue
                _blob, executable, paths = missing[name]
                self.store.add(name, executable, chunks, self.on_point)
                self.written += 1
                self.written_bytes += sizes[blob]
                for path in paths:
                    link_or_copy(name, path, src_dir_fd=self.store_fd, dst_dir_fd=self.target_fd)
                progress.advance(sizes[blob])


class Progress:
    """A line about every PROGRESS_EVERY seconds while content is written."""

    def __init__(self, say, files, size):
        self.say, self.files, self.size = say, files, size
        self.done = self.done_bytes = 0
        self.started = self.last = time.monotonic()

    def advance(self, size):
        self.done += 1
        self.done_bytes += size
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY and self.done < self.files:
            self.last = now
            self.say(f"stored {self.done:,} of {self.files:,} new files, {self.done_bytes / MIB:,.1f} of "
                     f"{self.size / MIB:,.1f} MiB ({now - self.started:.0f} s)")


class CatFile:
    """One `git cat-file --batch`: the blobs asked for (object ids, bytes),
    in that order (a thread writes the requests while they are read)."""

    def __init__(self, git_dir, blobs):
        self.process = subprocess.Popen(["git", "--git-dir", git_dir, "cat-file", "--batch"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.writer = threading.Thread(target=self._request, args=(blobs,), daemon=True)
        self.writer.start()

    def _request(self, blobs):
        try:
            for blob in blobs:
                self.process.stdin.write(blob + b"\n")
            self.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass    # git ended (or the reader gave up): the reader says why

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.stdout.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.writer.join()
        self.process.stderr.close()

    def read(self, blob):
        """The blob's content, as chunks: every one must be consumed before the next read."""
        header = self.process.stdout.readline().split()
        if len(header) != 3 or header[0] != blob or header[1] != b"blob":
            raise DeployError(f"git cat-file: no blob {blob.decode()} ({b' '.join(header).decode(errors='replace')})")
        return self._chunks(int(header[2]))

    def _chunks(self, size):
        left = size
        while left:
            chunk = self.process.stdout.read(min(left, CHUNK))
            if not chunk:
                raise DeployError("git cat-file: output ended within a blob")
            left -= len(chunk)
            yield chunk
        self.process.stdout.read(1)    # the newline after the content


def inside(root, path, what):
    """path, after following links, must stay within root."""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise DeployError(f"{what} leads outside the checkout ({os.path.relpath(path, root)} -> {real})")
    return real


def deploy_dir(workdir):
    """Where environment.sh, setup and uwsgi.ini live: the checkout, or the
    sub-directory a `.deploy` symlink names."""
    link = os.path.join(workdir, ".deploy")
    if not os.path.lexists(link):
        return workdir
    target = inside(workdir, link, ".deploy")
    if not os.path.isdir(target):
        raise DeployError(f".deploy does not point to a directory ({os.readlink(link)})")
    return target
