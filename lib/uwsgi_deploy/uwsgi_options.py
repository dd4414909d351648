"""An app's uwsgi.ini read exactly as uWSGI 2.0 reads it, and the options the
app may not set there.

How uWSGI reads an ini (core/ini.c, and magic_sub in core/utils.c):
- Every `%X` pair in the file is replaced first: `%%` by `%`, `%(` stays for
  the placeholders of a later pass, any other by a built-in value (the
  config file's path, a hostname, ... mostly the empty string). A `%` before
  a newline therefore joins two lines.
- Lines are split on `\\n` only; `\\v`, `\\f`, `\\x1c`-`\\x1e`, `\\x85`,
  `\\u2028` and `\\u2029` are ordinary characters.
- Blanks, tabs and CRs (only those) are stripped from both ends of a line.
- A line starting with `[` starts a section named by everything between its
  first and last character: `[uwsgi] ; x` is the section `uwsgi] ; `.
- A line starting with `;` or `#` is a comment; other lines are options:
  the key is everything before the first `=` (the whole line when there is
  none), both sides stripped again, and matched exactly (no case folding).
- A NUL byte ends a line for uWSGI's string functions.
t/test_uwsgi_ini_expand.py checks this reading against /usr/bin/uwsgi.
"""
from dataclasses import dataclass

from . import DeployError

SECTION = "uwsgi"
STRIPPED = " \t\r"
COMMENT = ";#"
MAGIC = "\0"   # what a %-variable's value stands for here (a NUL itself is refused)
DEPLOYER_PLACEHOLDERS = "uwsgi_deploy_"   # the escaping's placeholders (uwsgi_ini.PLACEHOLDERS)

# Options that set what the deployer sets: where the vassal listens, logs,
# reports and runs. uWSGI would apply both, or the app's.
OWNED = frozenset("""
    socket uwsgi-socket http-socket protocol socket-protocol
    stats stats-server stats-http logto logto2 log-maxsize log-backupname
    chdir chdir2 daemonize daemonize2 pidfile pidfile2 safe-pidfile safe-pidfile2
""".split())

# Every option of uWSGI 2.0.21's option table (core and the plugins Debian
# ships in uwsgi-core) that binds a socket or lets another process hand or
# route connections to this one: each is a way in that skips nginx. Derived
# from `uwsgi --plugins <all> --help`; t/test_uwsgi_ini_expand.py derives
# the list again from the binary and fails if one is missing here. The
# zeromq ones belong to the mongrel2 plugin, which does not load on Debian 12.
LISTENERS = frozenset("""
    suwsgi-socket ssl-socket http11-socket https-socket fastcgi-socket fastcgi-nph-socket
    scgi-socket scgi-nph-socket raw-socket puwsgi-socket shared-socket undeferred-shared-socket
    zerg zerg-fallback zerg-server zergpool zerg-pool
    http httprouter https https2 http-to http-to-https http-zerg http-stats http-stats-server http-ss
    http-subscription-server http-resubscribe
    fastrouter fastrouter-zerg fastrouter-stats fastrouter-stats-server fastrouter-ss
    fastrouter-subscription-server fastrouter-resubscribe fastrouter-resubscribe-bind
    rawrouter rawrouter-zerg rawrouter-stats rawrouter-stats-server rawrouter-ss
    rawrouter-subscription-server
    sslrouter sslrouter2 sslrouter-zerg sslrouter-stats sslrouter-stats-server sslrouter-ss
    sslrouter-subscription-server
    forkptyrouter forkpty-router forkptyurouter forkpty-urouter forkptyrouter-zerg
    forkptyrouter-stats forkptyrouter-stats-server forkptyrouter-ss
    tuntap-router tuntap-router-stats tuntap-device tuntap-device-rule tuntap-router-route
    tuntap-router-firewall-in tuntap-router-firewall-out
    udp snmp multicast cache-udp-server legion legion-mcast setns-socket
    pty-socket pty-connect pty-uconnect
    notify-socket subscription-notify-socket subscribe subscribe-to subscribe2 st
    subscription-tolerance zeromq zmq zeromq-socket zmq-socket
""".split())

# Options that read configuration from elsewhere (another file or section,
# a directory of variables, new option names), which this check never sees.
INCLUDES = frozenset("""
    ini include inherit config json js yaml yml xml xmlconfig sqlite sqlite3 ldap
    inject-before inject-after fallback-config declare-option declare-option2
    ini-paste ini-paste-logged envdir early-envdir early-emperor vassal-set vassal-cap
""".split())
# An Emperor inside the vassal would run vassals of its own, with templates.
INCLUDE_PREFIXES = ("emperor", "vassals-")

# Options that change who may connect to the app's sockets, control it
# (a FIFO that takes master commands) or read its log.
ACCESS = frozenset("""
    chmod-socket chmod chown-socket umask master-fifo abstract-socket logfile-chmod logfile-chown
""".split())

REASONS = [
    (OWNED, "is set by the deployer"),
    (LISTENERS, "opens a way in that skips nginx"),
    (INCLUDES, "loads configuration the deployer cannot check"),
    (ACCESS, "changes who can reach the app's sockets or log"),
]


@dataclass(frozen=True)
class Line:
    number: int
    text: str         # stripped, after the %-pass
    section: object   # the section the line is in (for a header, its own); None before any
    kind: str         # "blank", "comment", "section", "option"
    key: str = ""
    value: str = ""
    has_equals: bool = False


def _replace_magic(line, where):
    """The line after uWSGI's %-pass; each variable's value is MAGIC."""
    out, i = [], 0
    while i < len(line):
        if line[i] != "%":
            out.append(line[i])
            i += 1
            continue
        if i + 1 == len(line):
            raise DeployError(f"{where}: a '%' ending a line makes uWSGI join it with the next "
                              "one (write %% for a literal %)")
        following = line[i + 1]
        out.append("%" if following == "%" else "%(" if following == "(" else MAGIC)
        i += 2
    return "".join(out)


def read_lines(text, path):
    """Each line of text as uWSGI reads it (a Line). Raises DeployError
    naming the line for what cannot be read the same way here and there."""
    section = None
    for number, raw in enumerate(text.split("\n"), 1):
        where = f"{path}:{number}"
        if "\0" in raw:
            raise DeployError(f"{where}: a NUL byte (uWSGI would cut the line there)")
        line = _replace_magic(raw, where).strip(STRIPPED)
        if not line:
            yield Line(number, line, section, "blank")
        elif line[0] == "[":
            section = line[1:-1]
            yield Line(number, line, section, "section")
        elif line[0] in COMMENT:
            yield Line(number, line, section, "comment")
        else:
            key, equals, value = line.partition("=")
            yield Line(number, line, section, "option", key.rstrip(STRIPPED), value.strip(STRIPPED),
                       bool(equals))


def refusal(key):
    """Why an app may not set option key, or None. Matched as uWSGI does
    (exactly) and also with case and '_' folded, which costs nothing."""
    names = {key, key.lower().replace("_", "-")}
    if any(name.startswith(DEPLOYER_PLACEHOLDERS.replace("_", "-")) for name in names):
        return "is a placeholder the deployer's escaping relies on"
    for options, reason in REASONS:
        if names & options:
            return reason
    if any(name.startswith(INCLUDE_PREFIXES) for name in names):
        return "loads configuration the deployer cannot check"
    return None


def _option_set(line):
    """(key, value) an option line sets: `set = K=V` sets option K (and
    `set-placeholder = K=V` a placeholder K)."""
    if line.key in ("set", "set-placeholder", "set-ph"):
        key, _, value = line.value.partition("=")
        return key.strip(STRIPPED), value
    return line.key, line.value


def check_app_ini(text, path):
    """Refuse, naming file, line and option, an app's uwsgi.ini that uWSGI
    would read differently than this check, that has no [uwsgi] section,
    or that sets an option the app may not set (see REASONS)."""
    found_section = False
    for line in read_lines(text, path):
        where = f"{path}:{line.number}"
        if line.kind == "section":
            name = line.section
            if (not line.text.endswith("]") or "]" in name or MAGIC in name or not name
                    or name != name.strip(STRIPPED)):
                raise DeployError(f"{where}: malformed section header: uWSGI reads the name "
                                  f"{name.replace(MAGIC, '%?')!r} (write [name], nothing after it)")
            found_section = found_section or name == SECTION
            continue
        if line.kind != "option":
            continue
        if line.section is None:
            raise DeployError(f"{where}: option outside any [section]")
        if not line.has_equals:
            raise DeployError(f"{where}: cannot parse this line (expected 'option = value')")
        if line.section != SECTION:
            continue
        if MAGIC in line.key:
            raise DeployError(f"{where}: a %-variable in an option name (uWSGI would replace it)")
        key, value = _option_set(line)
        reason = refusal(key)
        if reason:
            raise DeployError(f"{where}: option '{key}' {reason}; remove it")
        if key == "env" and value.strip(STRIPPED).upper().startswith("UWSGI_"):
            raise DeployError(f"{where}: env names starting with UWSGI_ become uWSGI options when "
                              "the app reloads; rename it")
    if not found_section:
        raise DeployError(f"{path}: no [{SECTION}] section")
