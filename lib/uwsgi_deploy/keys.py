"""deploy-keys: the deploy account's ~/.ssh/authorized_keys, one scoped line per key.

A key added here gets a line sshd enforces:

    restrict,command="deploy-gate --key NAME --role ROLE --app APP ...",from="ADDR" TYPE BLOB deploy-key:NAME

so every login with it runs deploy-gate (gate.py), whatever the client
asked for; the gate reads the client's command from SSH_ORIGINAL_COMMAND and
runs it only if the key's role and apps allow it. The key's name, role and
apps live in that line and nowhere else: one file, written in one rename,
mode 0600, that only the deploy account (and root) can change. A `run` key
can run any command as that account (deploy-run), so it can change this file
too: give it only to whoever may have the account.

Lines this tool did not write (keys added by hand before scoped keys
existed) are kept as they are and listed as unscoped: with git-shell as the
login shell they may do everything, as before. Adding a key that is already
there unscoped replaces that line: that is how an old key is narrowed."""
import base64
import binascii
import fcntl
import hashlib
import os
import pwd
import re
import shlex
import sys
from dataclasses import dataclass

from . import DeployError
from .config import write_private
from .gate import GATE, Scope, check_key_name

COMMENT_PREFIX = "deploy-key:"
KEY_TYPE = re.compile(r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)"
                      r"@openssh\.com)\Z")
# what sshd's from= takes: addresses, CIDR, host name patterns, negation, comma separated
FROM = re.compile(r"[A-Za-z0-9.:/*?!_%-]+(,[A-Za-z0-9.:/*?!_%-]+)*\Z")
OUR_LINE = re.compile(r'restrict,command="%s (?P<args>[^"]*)"(,from="(?P<from>[^"]*)")? '
                      r'(?P<type>\S+) (?P<blob>\S+)( .*)?\Z' % GATE)
MAX_PUBLIC_KEY = 16384


def scope_of(args):
    """The Scope a line's gate arguments give; DeployError if they are not ones this tool writes."""
    name, role, apps = None, None, []
    words = list(args)
    while words:
        option = words.pop(0)
        if option not in ("--key", "--role", "--app") or not words:
            raise DeployError(f"unexpected {GATE} argument {option!r}")
        value = words.pop(0)
        if option == "--key":
            name = value
        elif option == "--role":
            role = value
        else:
            apps.append(value)
    return Scope.checked(name, role, apps)


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: str       # base64, as in the line

    @property
    def fingerprint(self):
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    @classmethod
    def parse(cls, text, where="stdin"):
        """One public key as ssh-keygen writes it: TYPE BASE64 [COMMENT]. The
        blob must decode and name the same type (the SSH wire format)."""
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) != 1:
            raise DeployError(f"{where}: expected one public key line (TYPE BASE64 [COMMENT]), got {len(lines)} lines")
        words = lines[0].split()
        if len(words) < 2 or not KEY_TYPE.match(words[0]):
            raise DeployError(f"{where}: not a public key (TYPE BASE64 [COMMENT]); options such as command= "
                              f"are not taken from the key: deploy-keys writes them")
        key = cls(words[0], words[1])
        try:
            raw = base64.b64decode(key.blob, validate=True)
        except (binascii.Error, ValueError):
            raise DeployError(f"{where}: the key's base64 does not decode") from None
        length = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
        if raw[4:4 + length].decode("ascii", "replace") != key.type:
            raise DeployError(f"{where}: the key's data is not a {key.type} key")
        return key


@dataclass(frozen=True)
class Entry:
    """A line of authorized_keys: scope is None for a line this tool did not write."""
    text: str
    key: object          # PublicKey, or None (a comment, a blank or unreadable line)
    scope: object = None
    source: str = None   # from=

    def describe(self):
        fingerprint = self.key.fingerprint if self.key else "-"
        if self.scope:
            return (f"{self.scope.name}  role={self.scope.role}  apps={','.join(self.scope.apps)}  "
                    f"from={self.source or 'anywhere'}  {fingerprint}")
        comment = self.text.split(self.key.blob, 1)[1].strip() if self.key else ""
        return f"(unscoped)  every command, every app  {fingerprint}" + (f"  {comment}" if comment else "")


def words_outside_quotes(text):
    """authorized_keys' own splitting: whitespace outside double quotes."""
    return re.findall(r'(?:[^\s"]|"(?:\\.|[^"\\])*")+', text)


def parse_line(text):
    match = OUR_LINE.match(text)
    if match:
        try:
            scope = scope_of(shlex.split(match.group("args")))
            return Entry(text, PublicKey(match.group("type"), match.group("blob")), scope, match.group("from"))
        except (DeployError, ValueError):
            pass     # looks like ours but is not: kept as a foreign line
    if not text.strip() or text.lstrip().startswith("#"):
        return Entry(text, None)
    words = words_outside_quotes(text)
    for index, word in enumerate(words[:-1]):
        if KEY_TYPE.match(word):
            return Entry(text, PublicKey(word, words[index + 1]))
    return Entry(text, None)


def line_for(scope, key, source=None):
    command = " ".join([GATE] + [shlex.quote(arg) for arg in scope.gate_args()])
    options = f'restrict,command="{command}"' + (f',from="{source}"' if source else "")
    return f"{options} {key.type} {key.blob} {COMMENT_PREFIX}{scope.name}"


class AuthorizedKeys:
    """~/.ssh/authorized_keys of the account: read, changed, written back in one rename under a lock."""

    def __init__(self, home):
        self.directory = os.path.join(home, ".ssh")
        self.path = os.path.join(self.directory, "authorized_keys")

    def entries(self):
        try:
            with open(self.path, encoding="utf-8", errors="surrogateescape") as stream:
                return [parse_line(line.rstrip("\n")) for line in stream]
        except FileNotFoundError:
            return []

    def change(self, edit):
        """edit(entries) -> (new entries, what to say); written only if the lines changed."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        with open(os.path.join(self.directory, ".authorized_keys.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            before = self.entries()
            after, message = edit(before)
            if [e.text for e in after] != [e.text for e in before]:
                write_private(self.path, "".join(e.text + "\n" for e in after))
            return message


def add(keys, scope, key, source=None, replace=False):
    line = parse_line(line_for(scope, key, source))

    def edit(entries):
        result, said, placed = [], [], False
        for entry in entries:
            same_key = entry.key is not None and entry.key.blob == key.blob
            if entry.scope and entry.scope.name == scope.name:
                if not same_key and not replace:
                    raise DeployError(f"key {scope.name} exists with another public key "
                                      f"({entry.key.fingerprint}): remove it first, or give --replace")
            elif same_key and entry.scope:
                raise DeployError(f"this public key is already key {entry.scope.name}: "
                                  f"deploy-keys remove {entry.scope.name} first")
            elif same_key:
                said.append("replaced its unscoped line (it could do everything)")
            else:
                result.append(entry)
                continue
            if not placed:      # where the old line was: sshd uses the first line that matches a key
                result.append(line)
                placed = True
        if not placed:
            result.append(line)
        unchanged = [e.text for e in result] == [e.text for e in entries]
        verb = "unchanged" if unchanged else "added"
        message = f"{verb} key {scope.name}: role {scope.role}, apps {', '.join(scope.apps)}, " \
                  f"from {source or 'anywhere'}, {key.fingerprint}"
        return result, "; ".join([message] + said)
    return keys.change(edit)


def remove(keys, name):
    check_key_name(name)

    def edit(entries):
        kept = [e for e in entries if not (e.scope and e.scope.name == name)]
        if len(kept) == len(entries):
            raise DeployError(f"no key {name} in {keys.path}")
        return kept, f"removed key {name}"
    return keys.change(edit)


def listing(keys):
    return [entry.describe() for entry in keys.entries() if entry.key]


def main(action, name=None, role=None, apps=(), source=None, replace=False, home=None, stdin=None, out=None):
    """deploy-keys ACTION: run as the deploy account itself, never as root
    (root's own file would get the lines). The file is the one sshd reads:
    in the account's home as the password database says (not $HOME)."""
    out = out or sys.stdout
    if os.geteuid() == 0:
        raise DeployError("run it as the deploy account: runuser -u ACCOUNT -- ~ACCOUNT/bin/deploy-keys ...")
    keys = AuthorizedKeys(home or pwd.getpwuid(os.geteuid()).pw_dir)
    if action == "list":
        for line in listing(keys):
            out.write(line + "\n")
        return 0
    if action == "remove":
        out.write(remove(keys, name) + "\n")
        return 0
    scope = Scope.checked(name, role, list(apps))
    if source is not None and not FROM.match(source):
        raise DeployError(f"--from {source!r}: give addresses or patterns as sshd's from= takes them "
                          "(like 10.0.0.5 or 10.0.0.0/24,192.0.2.7)")
    stdin = stdin or sys.stdin
    key = PublicKey.parse(stdin.read(MAX_PUBLIC_KEY + 1)[:MAX_PUBLIC_KEY])
    out.write(add(keys, scope, key, source, replace) + "\n")
    return 0
