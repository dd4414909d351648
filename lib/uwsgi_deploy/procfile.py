"""The Procfile beside uwsgi.ini: the app's processes, one `NAME: COMMAND`
a line, as Heroku, dokku and piku read it.
- `web` is the uWSGI app itself (uwsgi.ini); it may be omitted.
- `cronNAME: MIN HOUR DOM MON DOW COMMAND`: a scheduled job (five cron
  fields: `*`, numbers, lists, ranges, `*/N`, `A-B/N`).
- `clockNAME`: a singleton, one per app, never two at once.
- any other name: a worker, one per host unless deploy-scale says more.
Blank lines and lines starting with `#` are ignored. Errors are one line
naming the file and the line (never a command's text: it may hold a secret)."""
import os
import re
import time
from dataclasses import dataclass

from . import DeployError

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}\Z")
LINE = re.compile(r"\s*(?P<name>[^:\s]+)\s*:(?P<rest>.*)\Z")
WEB, WORKER, CLOCK, CRON = "web", "worker", "clock", "cron"
# (name, least, greatest) of the five cron fields
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
               ("day of week", 0, 7))


@dataclass(frozen=True)
class Process:
    """One Procfile entry. schedule: for a cron job, the five fields as
    frozensets of allowed values (day of week 7 is folded into 0)."""
    name: str
    kind: str
    command: str
    schedule: tuple = None

    def due(self, when):
        """A cron job: whether the minute of `when` (a time.struct_time) matches."""
        minute, hour, dom, month, dow = self.schedule
        weekday = (when.tm_wday + 1) % 7   # struct_time: Monday is 0; cron: Sunday is 0
        return (when.tm_min in minute and when.tm_hour in hour and when.tm_mon in month
                and when.tm_mday in dom and weekday in dow)


def kind_of(name):
    if name == WEB:
        return WEB
    if name.startswith(CRON):
        return CRON
    if name.startswith(CLOCK):
        return CLOCK
    return WORKER


def parse_field(text, least, greatest):
    """One cron field: the set of values it allows; ValueError saying why not."""
    values = set()
    for part in text.split(","):
        base, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise ValueError("a step (/N) must be a number above 0")
        if base == "*":
            low, high = least, greatest
        elif re.fullmatch(r"[0-9]+-[0-9]+", base):
            low, high = map(int, base.split("-"))
        elif base.isdigit():
            low = high = int(base)
            if step:
                high = greatest
        else:
            raise ValueError("expected *, a number, a range A-B or a list of them")
        if not least <= low <= high <= greatest:
            raise ValueError(f"a value is outside {least}-{greatest}")
        values.update(range(low, high + 1, int(step) if step else 1))
    return frozenset(values)


def parse_schedule(fields):
    """The five cron fields (strings) as sets; ValueError naming the bad one."""
    sets = []
    for text, (what, least, greatest) in zip(fields, CRON_FIELDS):
        try:
            sets.append(parse_field(text, least, greatest))
        except ValueError as error:
            raise ValueError(f"{what} field: {error}") from None
    if 7 in sets[4]:
        sets[4] = (sets[4] - {7}) | {0}
    return tuple(sets)


def parse(text, path="Procfile"):
    """The entries of a Procfile's text, in file order; DeployError on the
    first bad line (`PATH:LINE: why`)."""
    entries, seen = [], set()
    for number, line in enumerate(text.split("\n"), 1):
        where = f"{path}:{number}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = LINE.match(line.rstrip("\r"))
        if not match:
            raise DeployError(f"{where}: expected NAME: COMMAND")
        name, rest = match.group("name"), match.group("rest").strip()
        if not NAME.match(name):
            raise DeployError(f"{where}: invalid process name {name!r}: use up to 40 letters, digits, "
                              "'_' and '-', starting with a letter")
        if name in seen:
            raise DeployError(f"{where}: process {name} is declared twice")
        seen.add(name)
        kind = kind_of(name)
        schedule = None
        if kind == CRON:
            words = rest.split(None, 5)
            if len(words) < 6:
                raise DeployError(f"{where}: {name} needs five cron fields (MIN HOUR DOM MON DOW) "
                                  "and a command")
            try:
                schedule = parse_schedule(words[:5])
            except ValueError as error:
                raise DeployError(f"{where}: {name}: {error}") from None
            rest = words[5].strip()
        if not rest:
            raise DeployError(f"{where}: {name} has no command")
        entries.append(Process(name, kind, rest, schedule))
    return entries


def read(path):
    """The entries of the Procfile at path ([] when there is none)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DeployError(f"{path}: not UTF-8 text") from None
    return parse(text, path)


def background(entries):
    """The entries other than web: what the supervisor runs."""
    return [entry for entry in entries if entry.kind != WEB]


def procfile_path(deploy_dir):
    return os.path.join(deploy_dir, "Procfile")


def minute_of(seconds=None):
    """The minute a moment falls in, as a number (minutes since the epoch)."""
    return int((time.time() if seconds is None else seconds) // 60)
