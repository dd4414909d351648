# What the fleet playbooks read from a host, checked before any of it is used.
#
# A host is not trusted: whoever holds one must not get the primary (and with
# it the fleet key to every host). Everything a host prints is data: its JSON
# answer is parsed here, in Python, against a strict schema (the phase's keys
# and nothing else; revs of 12 or 40 hex digits; version names of the app-name
# pattern; booleans), and a value that passed can hold no template. What a
# host prints that is shown as text (a failure's last line) is cut to one
# line, stripped of control characters, its template delimiters broken, and
# marked unsafe (Ansible never templates it). A host whose answer does not
# pass is a failed host; it never breaks what the playbook does for the others.
from __future__ import annotations

import json
import re

try:
    from ansible.utils.unsafe_proxy import wrap_var
except ImportError:     # outside Ansible (the toolkit's unit tests): the checks alone
    def wrap_var(value):
        return value

REV = re.compile(r"(?:[0-9a-f]{12}|[0-9a-f]{40})\Z")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*-[0-9a-f]{12}(?:\.[1-9][0-9]*)?\Z")
MAX_ANSWER = 4096      # characters: a phase's answer is one short line
MAX_LINE = 300         # characters of a host's line shown to the pusher
TIMED_OUT = "failed to execute in the expected time frame"
# ssh's own words for a connection that failed or was lost
SSH_SAYS = re.compile(r"Connection (?:to \S+ port \d+ )?(?:timed out|refused|closed|reset)|Timeout, server|"
                      r"timed out during banner exchange|Broken pipe|No route to host|Could not resolve")
VAGUE = re.compile(r"Connection to \S+ port \d+ timed out\Z")

# each phase's answer: {key: kind}; "name?" and "rev?" may be null
SCHEMAS = {
    "prepare": {"version": "name", "prepared": "bool", "live": "name?", "live_rev": "rev?"},
    "commit": {"version": "name", "switched": "bool", "previous": "name?", "previous_rev": "rev?"},
    "abort": {"version": "name", "removed": "bool", "live": "name?"},
    "undo": {"version": "name", "removed": "bool", "rolled_back_to": "name?", "live": "name?"},
}


def shown(text, limit=MAX_LINE):
    """A host's text made fit to show: one line, printable, no template
    delimiters, at most limit characters, marked unsafe."""
    text = "".join(c if c.isprintable() else " " for c in str(text)).strip()
    for opening in ("{{", "{%", "{#"):
        text = text.replace(opening, opening[0] + " " + opening[1])
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return wrap_var(text)


def _valid(kind, value):
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        return optional
    if kind == "bool":
        return isinstance(value, bool)
    pattern = REV if kind == "rev" else NAME
    return isinstance(value, str) and bool(pattern.match(value))


def fleet_answer(result, phase):
    """The phase's answer in a registered result: {"ok": True, fields...}
    when the command succeeded and printed exactly the phase's JSON; else
    {"ok": False, "error": why}. Values of an ok answer are checked strings,
    booleans or None."""
    schema = SCHEMAS[phase]
    result = result if isinstance(result, dict) else {}
    if result.get("unreachable") or result.get("failed") or result.get("rc", 1) != 0:
        return {"ok": False, "error": "the command failed"}
    stdout = result.get("stdout")
    if not isinstance(stdout, str) or len(stdout) > MAX_ANSWER:
        return {"ok": False, "error": f"answered {phase} with no answer of the expected size"}
    try:
        answer = json.loads(stdout.strip())
    except ValueError:
        return {"ok": False, "error": f"answered {phase} with something that is not JSON: {shown(stdout, 80)!r}"}
    if not isinstance(answer, dict) or set(answer) != set(schema):
        return {"ok": False, "error": f"answered {phase} with JSON that is not the {phase} answer"}
    bad = [key for key, kind in schema.items() if not _valid(kind, answer[key])]
    if bad:
        return {"ok": False, "error": f"answered {phase} with invalid {', '.join(sorted(bad))}"}
    return dict(answer, ok=True)


def ssh_failure(message):
    """What ssh said of a lost or refused connection, from an unreachable
    result's message or a git push's stderr (which also carry what the host
    printed: not shown). ssh follows "Connection timed out during banner
    exchange" with "Connection to HOST port N timed out", which says less:
    the line that names what happened is kept."""
    said = [line.strip().removeprefix("Failed to connect to the host via ssh: ")
            for line in str(message).splitlines()
            if SSH_SAYS.search(line) and not line.lstrip().startswith(("----->", "!"))]
    said = [line for line in said if not VAGUE.match(line)] or said
    return said[-1] if said else "its ssh connection failed or stopped answering"


def push_failure(result):
    """Why the git push to a host failed, in one line: what ssh said of the
    connection (unreachable), else git's own error. git's last line is
    often "and the repository exists.", the end of a hint that says nothing."""
    lines = [str(line).strip() for line in result.get("stderr_lines") or str(result.get("stderr") or "").splitlines()
             if str(line).strip()]
    if any(SSH_SAYS.search(line) for line in lines):
        return f"unreachable (push): {ssh_failure(chr(10).join(lines))}"
    errors = [line for line in lines if line.startswith(("fatal: ", "error: ", "remote: error: ")) or "rejected]" in line]
    said = (errors or lines or [f"git push exited with status {result.get('rc')}"])[-1]
    return f"the push to it failed: {said}"


def fleet_reason(result, step, limit=None):
    """Why a task failed on a host, in one line fit to show."""
    result = result if isinstance(result, dict) else {}
    message = str(result.get("msg") or "")
    if TIMED_OUT in message:
        return shown(f"no answer within {limit} s ({step})" if limit else f"no answer in time ({step})")
    if result.get("unreachable"):
        return shown(f"unreachable ({step}): {ssh_failure(message)}")
    if step == "push" and result.get("rc") not in (None, 0):
        return shown(push_failure(result))
    lines = [line for line in result.get("stderr_lines") or str(result.get("stderr") or "").splitlines()
             if isinstance(line, str) and line.strip()]
    text = lines[-1] if lines else (message or "failed")
    text = re.sub(r"^deploy-version: ", "", str(text).strip())
    return shown(text)


def fleet_undo_plan(hostvars, hosts):
    """After a failed commit, what each host may serve. switched: its commit
    answered that it switched; unknown: its commit ran and gave no valid
    answer (timed out, unreachable, garbage): it may have switched; refused:
    its commit failed and said why (a host whose watch fails switches back by
    itself); waiting: its commit never ran (a later batch); already_live:
    its prepare said the version was live before this deploy, which no
    rollback touches. Every host but the last gets `deploy-version --undo`,
    which on a host that did not switch only removes the candidate."""
    plan = {"switched": [], "unknown": [], "refused": [], "waiting": [], "already_live": []}
    for host in hosts:
        variables = hostvars[host]
        prepared = fleet_answer(variables.get("prepared"), "prepare")
        if prepared["ok"] and not prepared["prepared"]:
            plan["already_live"].append(host)
            continue
        committed = variables.get("committed")
        if not isinstance(committed, dict) or committed.get("skipped"):
            plan["waiting"].append(host)
            continue
        answer = fleet_answer(committed, "commit")
        if answer["ok"]:
            plan["switched" if answer["switched"] else "refused"].append(host)
        elif committed.get("rc") not in (None, 0) and not committed.get("unreachable") \
                and TIMED_OUT not in str(committed.get("msg") or ""):
            plan["refused"].append(host)
        else:
            plan["unknown"].append(host)
    return plan


def fleet_failed_items(results, phase):
    """The hosts (loop items) of a loop's results whose command failed, did
    not run, or answered what is not the phase's answer."""
    return [str(result.get("item")) for result in results or []
            if isinstance(result, dict) and not fleet_answer(result, phase)["ok"]]


class FilterModule:
    def filters(self):
        return {"fleet_answer": fleet_answer, "fleet_reason": fleet_reason, "fleet_undo_plan": fleet_undo_plan,
                "fleet_failed_items": fleet_failed_items}
