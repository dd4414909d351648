"""What a candidate opened, seen from /proc rather than read from its ini.

After the probe and before the switch, the candidate's processes (its master
and workers, from its stats socket and the Emperor's, and every process
descended from them) are found, their open sockets read from /proc/PID/fd
(`socket:[INODE]`) and matched against the kernel's socket tables as the
master's network namespace shows them (/proc/PID/net/tcp, tcp6, udp, udp6,
udplite, udplite6, raw, raw6, packet, unix). A TCP socket that listens, a
UDP socket bound to a port and not connected to one peer, any raw or packet
socket, or a unix socket that listens (or a bound datagram one) other than
the version's own socket and stats socket, refuses the version: each is a
way in that skips nginx, however it was opened (an option the parser did not
know, a plugin, the app's import-time code).

Other apps' live links (~/run/APP.socket) are compared before and after the
probe: a candidate that replaced one (uWSGI unlinks a socket path before it
binds it) is refused, naming the link.

The same look runs again during the post-switch watch (WatchOpened, once a
second and when the window closes), over the version's web vassal and its
processes vassal (the Procfile's supervisor, workers, clock and cron jobs):
what the version opens once it takes traffic (after a delay, on a request,
from a background process) makes it broken like a failed /ping, and the
watch switches back.

What it cannot see: a socket opened after the watch, or between two looks
and closed again before the next, and a process that left the version's
process tree (double fork). docs/security.md says so."""
import ipaddress
import os
import re
import stat
import struct
import time

from . import DeployError, proclayout
from .layout import MAINTENANCE_SUFFIX, REV_LENGTH
from .links import switch_symlink
from .stats import read_stats, vassal_state
from .vassal import kill_pids

TCP_LISTEN = "0A"
UNIX_LISTENING = 0x10000   # __SO_ACCEPTCON in /proc/net/unix's Flags
UNIX_TYPES = {1: "unix stream", 2: "unix datagram", 5: "unix seqpacket"}
INET_TABLES = ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6")
SOCKET_LINK = re.compile(r"socket:\[(\d+)\]\Z")


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as stream:
            return stream.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def parent_pids():
    """{pid: parent pid} of every process now (from /proc/PID/stat: the
    kernel here has no /proc/PID/task/TID/children)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read(f"/proc/{name}/stat")
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 1:
                parents[int(name)] = int(fields[1])
    return parents


def process_tree(roots):
    """roots and every process descended from them, alive now."""
    return set(tree_depths(roots))


def tree_depths(roots, parents=None):
    """{pid: generations below its root} for roots (0) and every process
    descended from them, alive now; parents: parent_pids(), if read already."""
    children = {}
    for pid, parent in (parent_pids() if parents is None else parents).items():
        children.setdefault(parent, []).append(pid)
    found, todo = {}, [(pid, 0) for pid in roots if os.path.exists(f"/proc/{pid}")]
    while todo:
        pid, depth = todo.pop()
        if pid not in found:
            found[pid] = depth
            todo.extend((child, depth + 1) for child in children.get(pid, []))
    return found


def candidate_pids(settings, version):
    """(roots, all): the candidate's master and workers (its stats socket,
    and the Emperor's record of its vassal), and those with their descendants."""
    stats = read_stats(version.stats_socket)
    if stats is None:
        raise DeployError(f"its stats socket {version.stats_socket} does not answer")
    roots = {stats.get("pid")} | {worker.get("pid") for worker in stats.get("workers", [])}
    state = vassal_state(read_stats(settings.emperor_stats), os.path.basename(version.vassal_ini))
    if state:
        roots.add(state.get("pid"))
    roots = {pid for pid in roots if isinstance(pid, int) and pid > 0}
    return roots, process_tree(roots)


def socket_inodes(pids):
    """{inode: lowest pid holding it} of the sockets pids have open."""
    inodes = {}
    for pid in sorted(pids):
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for name in names:
            try:
                match = SOCKET_LINK.match(os.readlink(f"/proc/{pid}/fd/{name}"))
            except OSError:
                continue
            if match:
                inodes.setdefault(int(match.group(1)), pid)
    return inodes


def inet_address(text):
    """`0100007F:1F90` (as /proc/net/tcp shows it) -> ('127.0.0.1', 8080)."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)   # each 32-bit word in host (little-endian) order
    packed = struct.pack(f">{len(words)}I", *words)
    return str(ipaddress.ip_address(packed)), int(port, 16)


def show(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def inet_findings(net, inodes):
    """(what, address, inode) for each listening or bound inet socket of inodes."""
    for table in INET_TABLES:
        lines = _read(os.path.join(net, table)).splitlines()[1:]
        protocol = table.rstrip("6")
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or not parts[9].isdigit() or int(parts[9]) not in inodes:
                continue
            local, remote = inet_address(parts[1]), inet_address(parts[2])
            if protocol == "tcp":
                if parts[3] == TCP_LISTEN:
                    yield "tcp listener", show(*local), int(parts[9])
            elif protocol in ("udp", "udplite"):
                if local[1] and not remote[1]:
                    yield f"{protocol} socket bound", show(*local), int(parts[9])
            else:
                yield f"{protocol} socket", show(*local), int(parts[9])


def packet_findings(net, inodes):
    for line in _read(os.path.join(net, "packet")).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 9 and parts[8].isdigit() and int(parts[8]) in inodes:
            yield "packet socket", "", int(parts[8])


def unix_findings(net, inodes, own_paths):
    """Listening (or bound datagram) unix sockets of inodes but own_paths."""
    for line in _read(os.path.join(net, "unix")).splitlines()[1:]:
        parts = line.split(None, 7)
        if len(parts) < 7 or not parts[6].isdigit() or int(parts[6]) not in inodes:
            continue
        path = parts[7].strip() if len(parts) > 7 else ""
        kind = UNIX_TYPES.get(int(parts[4], 16), "unix")
        listening = int(parts[3], 16) & UNIX_LISTENING
        if path in own_paths:
            continue
        if listening:
            yield f"{kind} listener", path or "(unnamed)", int(parts[6])
        elif path and kind == "unix datagram":
            yield f"{kind} bound", path, int(parts[6])


def findings(pids, own_paths):
    """['udp socket bound 0.0.0.0:9999 (pid 123)', ...]: whatever pids opened
    that takes connections or datagrams, but own_paths."""
    return [text for text, pid in held(pids, own_paths)]


def held(pids, own_paths, ignore=()):
    """[(finding, pid holding it)] for findings(); sockets whose inode is
    in ignore are left out."""
    inodes = {inode: pid for inode, pid in socket_inodes(pids).items() if inode not in ignore}
    if not inodes:
        return []
    net = f"/proc/{min(pids)}/net"
    found = [*inet_findings(net, inodes), *packet_findings(net, inodes), *unix_findings(net, inodes, own_paths)]
    return [(f"{what} {address} (pid {inodes[inode]})".replace("  ", " "), inodes[inode])
            for what, address, inode in found]


class LinkWatch:
    """Other apps' links in ~/run (the live socket APP.socket, the canary
    link APP.canary.socket, the link behind maintenance APP.behind.socket) as
    they were when it was made; changed() names those a candidate took over."""

    def __init__(self, settings, app):
        self.run_dir, self.app = settings.run_dir, app
        self.before = self.links()

    def links(self):
        links = {}
        try:
            names = os.listdir(self.run_dir)
        except FileNotFoundError:
            return links
        for name in names:
            path = os.path.join(self.run_dir, name)
            if name.endswith(".socket") and link_app(name) != self.app.name and os.path.islink(path):
                try:
                    links[name] = os.readlink(path)
                except OSError:
                    pass
        return links

    def restore(self, names):
        """Put back the links names (from changed()) as they were."""
        for name in names:
            path = os.path.join(self.run_dir, name)
            if not os.path.isdir(path):
                switch_symlink(path, self.before[name])

    def changed(self):
        """{name: what happened} of the other apps' links that no longer lead
        to one of their own app's sockets. A link another deploy, canary or
        maintenance switched meanwhile (to OTHER-<rev>[.N].socket, or
        OTHER.maintenance.socket, in ~/run) has not changed."""
        changed = {}
        for name, target in sorted(self.before.items()):
            path = os.path.join(self.run_dir, name)
            own = re.compile(re.escape(link_app(name)) + r"(-[0-9a-f]{%d}(\.[1-9][0-9]*)?|%s)\.socket\Z"
                             % (REV_LENGTH, re.escape(MAINTENANCE_SUFFIX)))
            try:
                now = os.readlink(path)
                in_run = os.path.dirname(now) in ("", self.run_dir)   # canary.follow writes absolute links
                if now == target or (in_run and own.match(os.path.basename(now))):
                    continue
                what = f"now leads to {now}"
            except FileNotFoundError:
                what = "gone"
            except OSError:
                what = "now a socket" if _is_socket(path) else "no longer a link"
            changed[name] = f"{path} (was -> {target}, {what})"
        return changed


def link_app(name):
    """The app a link in ~/run is of: APP.socket, APP.canary.socket,
    APP.behind.socket -> APP (an app's name has no dot)."""
    return name.split(".", 1)[0]


def _is_socket(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def check_candidate(settings, version, watch):
    """Refuse the candidate if it opened a way in beside its own socket and
    stats socket, or took over another app's live link (which is put back
    first). Returns (processes, sockets) looked at, for the report."""
    roots, pids = candidate_pids(settings, version)
    found = findings(pids, {version.socket, version.stats_socket})
    problems = what_is_wrong(version, found, watch, "started", "")
    if problems:
        kill_pids(sorted(pids - roots))   # its master and workers go with its vassal; nothing else would
        raise DeployError(problems)
    return len(pids), len(socket_inodes(pids))


def what_is_wrong(version, found, watch, while_it, when):
    """The refusal for what was found and for the other apps' links a
    LinkWatch saw change (put back here), or None."""
    problems = []
    taken = watch.changed()
    if taken:
        watch.restore(taken)
        problems.append(f"another app's live link changed while {version.run_name} {while_it}: "
                        + "; ".join(taken.values()) + " (put back)")
    if found:
        problems.append(f"{version.run_name} opened what nginx does not reach{when}: " + "; ".join(found))
    return "; and ".join(problems) + " (docs/security.md)" if problems else None


WATCH_LOOK_EVERY = 1.0   # seconds between two looks during the watch (each reads all of /proc's stat files)
CLOSING_LOOK_WAIT = 2.0  # seconds the window stays open for its closing look while the Emperor does not answer


class WatchOpened:
    """A look for health.watch_health(also=): what the version opens while it
    takes traffic. Its processes are its web vassal's master and every
    process descended from it, and its processes vassal's (the Procfile's
    supervisor and what it runs), found from the Emperor's record of both;
    each look reads their sockets as check_candidate does, once every
    WATCH_LOOK_EVERY seconds and once more when the window closes (a look
    when the Emperor does not answer is taken at the next call instead).
    Anything found raises DeployError naming each socket (protocol,
    address, pid), and so does another app's live link taken over (put
    back first, as before the switch): the watch switches back. The version's uWSGI processes
    (masters, their direct children) and the Procfile's processes stop with
    the version, gracefully; a process of the app's own that holds what was
    found is killed, or it would outlive the version."""

    def __init__(self, settings, version, say=None, every=WATCH_LOOK_EVERY):
        self.settings, self.version, self.say, self.every = settings, version, say, every
        self.links = LinkWatch(settings, version.app)   # the other apps' live links, checked before the switch
        self.next_look = 0.0
        self.closed = False     # the window-closing look is taken
        self.looks = self.most_processes = 0
        self.closing_since = None

    def __call__(self, window_closing=False):
        now = time.monotonic()
        final = window_closing and not self.closed
        if now < self.next_look and not final:
            return True
        masters = self.masters()
        if masters is None:   # the closing look is awaited (a little): the window stays open for it
            self.closing_since = self.closing_since or (now if window_closing else None)
            return not window_closing or now - self.closing_since > CLOSING_LOOK_WAIT
        self.next_look, self.closed = now + self.every, self.closed or window_closing
        self.look(masters)
        if final and self.say:
            self.say(f"sockets: {self.looks} looks at up to {self.most_processes} processes while it served: "
                     "none listens but its own socket and stats")
        return True

    def masters(self):
        """{'web': pid, 'procs': pid, 'emperor': pid} of the version's running
        vassals and the Emperor, or None when the Emperor's stats did not answer."""
        emperor = read_stats(self.settings.emperor_stats)
        if emperor is None:
            return None
        masters = {"emperor": emperor.get("pid")}
        for kind, ini in (("web", self.version.vassal_ini), ("procs", proclayout.vassal_ini(self.version))):
            pid = (vassal_state(emperor, os.path.basename(ini)) or {}).get("pid")
            if isinstance(pid, int) and pid > 0:
                masters[kind] = pid
        return masters

    def look(self, masters):
        parents = parent_pids()
        # uWSGI's own processes (a master, its workers and daemons; the supervisor) and the Procfile's
        own_depth = {"web": 1, "procs": 2}
        trees = {kind: tree_depths([masters[kind]], parents) for kind in own_depth if kind in masters}
        pids = set().union(*trees.values()) if trees else set()
        self.looks += 1
        self.most_processes = max(self.most_processes, len(pids))
        # a vassal the Emperor has just forked holds the Emperor's sockets
        # (its stats socket) until it closes them: they are not the version's
        emperor = masters["emperor"]
        inherited = socket_inodes({emperor}) if pids and isinstance(emperor, int) and emperor > 0 else {}
        found = held(pids, {self.version.socket, self.version.stats_socket}, ignore=inherited) if pids else []
        problems = what_is_wrong(self.version, [text for text, pid in found], self.links, "served",
                                 " after going live")
        if problems:
            managed = {pid for kind, tree in trees.items() for pid, depth in tree.items()
                       if depth <= own_depth[kind]}
            kill_pids(sorted({pid for text, pid in found} - managed))
            raise DeployError(problems)
