"""Prepared candidates: versions that `deploy-version --prepare` left running
on their own socket, untouched by traffic, waiting for a commit or an abort.

Each has a record, ~/run/APP-<rev>.prepared, beside its vassal: the commit it
was built from and what deployed it (deploy.log's via), so that the commit, run later by
another process, finds it again by app and rev and logs it as a push would.
The record is written and removed with the app's deploy lock held; the next
deploy's recovery removes a candidate (and its record) that nobody committed
or aborted, like anything else that is not live."""
import json
import os
import time
from dataclasses import dataclass

from . import DeployError
from .inventory import prepared_records
from .layout import REV_LENGTH


@dataclass(frozen=True)
class Prepared:
    version: object     # layout.Version
    commit: str         # the full commit the candidate was checked out from
    via: str            # what deploy.log will say deployed it (via=)
    since: float        # time.time() when it was prepared

    @property
    def age(self):
        return max(0.0, time.time() - self.since)


def write_record(version, commit, via):
    """Record version as prepared (mode 0600, like everything in run/)."""
    fd = os.open(version.prepared_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        json.dump({"commit": commit, "via": via, "since": time.time()}, stream)
        stream.write("\n")


def read_record(version):
    """The Prepared record of version, or None (none, or not readable: a
    record half written by a killed prepare is no record)."""
    try:
        with open(version.prepared_file) as stream:
            fields = json.load(stream)
        return Prepared(version, str(fields["commit"]), str(fields["via"]), float(fields["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_prepared(app, rev):
    """The prepared version of app whose rev starts with rev (a prefix, or a
    whole commit), or None."""
    key = rev.lower()[:REV_LENGTH]
    matches = [run for _path, run in prepared_records(app) if run.rev.startswith(key)]
    if len(matches) > 1:
        raise DeployError(f"{rev!r} is ambiguous: " + ", ".join(v.name for v in matches) + " are prepared")
    return matches[0] if matches else None
