"""What a commit's tree holds, read from git without reading its files: its
entries (git ls-tree), and what its files add up to, which the checkout's
limit (DEPLOY_CHECKOUT_MAX_MB) bounds.

Summing the sizes of 20,000 files asks git for each one's object header
(ls-tree -l); a push close to the live version need not. Each checkout
records on its directory the commit it holds and its files' total (the
extended attribute user.uwsgi-deploy.tree, written before the directory
is renamed into place, gone with it). The next checkout then lists its
tree without sizes and adds what changed since that commit: git diff-tree
names the few blobs, git cat-file --batch-check sizes them. Where there is
no record (a first push, a file system without user attributes, a commit
git no longer has), or the count of entries does not add up, the whole
tree is sized as before."""
import os
import re
import subprocess

from . import DeployError

RECORD_ATTRIBUTE = "user.uwsgi-deploy.tree"
RECORD = re.compile(rb"(?P<commit>[0-9a-f]{40}|[0-9a-f]{64}) (?P<total>[0-9]+) (?P<entries>[0-9]+)\Z")
HAS_CONTENT = (b"100644", b"100755", b"120000")    # a file, an executable, a symlink (its target)


class Listing:
    """A tree's entries, as `git ls-tree -r -z` lists them (records:
    b"MODE KIND OBJECT\\tPATH", or with sizes b"MODE KIND OBJECT SIZE\\tPATH"),
    the sum of its files' sizes, and how that sum was found."""

    def __init__(self, commit, records, total, how, sizes=None):
        self.commit, self.records, self.total, self.how = commit, records, total, how
        self.sizes = sizes or {}   # {blob: size} of those it knows (bytes: int)

    @property
    def entries(self):
        return len(self.records)

    def record(self):
        """The attribute's value: commit, total, entries."""
        return f"{self.commit} {self.total} {self.entries}".encode()


def _run(git_dir, args, what, input=None):
    result = subprocess.run(["git", "--git-dir", git_dir, *args], input=input, capture_output=True)
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise DeployError(f"git {what}: {lines[-1] if lines else f'exit status {result.returncode}'}")
    return result.stdout


def ls_tree(git_dir, commit, sizes):
    """The records of commit's tree, with sizes or without."""
    out = _run(git_dir, ["ls-tree", "-r", "-z", "--full-tree", *(["-l"] if sizes else []), commit], "ls-tree")
    records = out.split(b"\0")
    if records and not records[-1]:
        records.pop()
    return records


def sized_total(records):
    """The sum of the sizes an `ls-tree -l` listing gives (- for a submodule)."""
    total = 0
    for record in records:
        size = record.partition(b"\t")[0].rsplit(None, 1)[1]
        if size != b"-":
            total += int(size)
    return total


def blob_sizes(git_dir, blobs):
    """{object id (bytes): size} of blobs, from one `git cat-file --batch-check`."""
    blobs = sorted(set(blobs))
    if not blobs:
        return {}
    out = _run(git_dir, ["cat-file", "--batch-check"], "cat-file", input=b"".join(b + b"\n" for b in blobs))
    sizes = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) != 3 or fields[1] != b"blob":
            raise DeployError(f"git cat-file: no blob {line.decode(errors='replace')}")
        sizes[fields[0]] = int(fields[2])
    return sizes


def changes(git_dir, old, new):
    """(blobs out, blobs in, entries added - entries removed) from old's tree
    to new's: `git diff-tree -r -z --no-renames`."""
    out = _run(git_dir, ["diff-tree", "-r", "-z", "--no-renames", old, new], "diff-tree")
    fields = out.split(b"\0")
    removed, added, count = [], [], 0
    for index in range(0, len(fields) - 1, 2):
        meta = fields[index].split()     # :OLDMODE NEWMODE OLD NEW STATUS
        if len(meta) != 5:
            raise DeployError(f"git diff-tree: unexpected line {fields[index].decode(errors='replace')!r}")
        old_mode, new_mode, old_blob, new_blob = meta[0][1:], meta[1], meta[2], meta[3]
        if old_mode in HAS_CONTENT:
            removed.append(old_blob)
        if new_mode in HAS_CONTENT:
            added.append(new_blob)
        count += (old_mode == b"000000") - (new_mode == b"000000")
    return removed, added, count


def read_record(directory):
    """(commit, total, entries) a checkout recorded on directory, or None."""
    try:
        value = os.getxattr(directory, RECORD_ATTRIBUTE)
    except OSError:
        return None
    match = RECORD.match(value)
    if not match:
        return None
    return match.group("commit").decode(), int(match.group("total")), int(match.group("entries"))


def write_record(directory, listing):
    """Record what directory holds; where the file system keeps no user
    attributes the next checkout sizes its whole tree."""
    try:
        os.setxattr(directory, RECORD_ATTRIBUTE, listing.record())
    except OSError:
        pass


def list_tree(git_dir, commit, previous=None):
    """commit's Listing. previous: the directory of a version checked out
    before (the live one), whose record spares sizing every file."""
    record = read_record(previous) if previous else None
    if record:
        old, old_total, old_entries = record
        records = ls_tree(git_dir, commit, sizes=False)
        try:
            removed, added, count = changes(git_dir, old, commit)
            sizes = blob_sizes(git_dir, removed + added)
        except DeployError:
            sizes = None    # old is gone (a forced push, then gc): size the whole tree
        if sizes is not None and old_entries + count == len(records):
            total = old_total + sum(sizes[b] for b in added) - sum(sizes[b] for b in removed)
            return Listing(commit, records, total, f"{len(removed) + len(added)} blobs changed since {old[:12]}",
                           sizes)
    records = ls_tree(git_dir, commit, sizes=True)
    return Listing(commit, records, sized_total(records), "every file sized")
