# An Ansible stdout callback for the fleet playbooks: what a pusher reads.
# Each task is a `-----> title` line; the lines a host's command wrote on
# stderr (the tools' stage lines; stdout carries their JSON for the playbook)
# follow, each prefixed with the host's name; a failure is a ` !` line naming
# the host and the reason. Nothing else: no task banners, no JSON dumps.
#
# Given -e journal=PATH (the primary's ~/run/APP.fleet.journal, which fleet.py
# wrote before the playbook started), it also keeps that journal up to date as
# tasks start and end (lib/uwsgi_deploy/fleet_journal.py): the phase, and each
# host's state, so that a controller killed half way leaves a record of what
# it had done. Tasks are known by their tags (fleet_push, fleet_prepare, ...).
from __future__ import annotations

import json
import os
import sys

from ansible.plugins.callback import CallbackBase

# what a host's failure looks like: the filters' module, beside this one
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "filter_plugins"))
from fleet_answers import TIMED_OUT, ssh_failure  # noqa: E402

try:                                    # on PYTHONPATH when fleet.py runs the playbook
    from uwsgi_deploy import fleet_journal
except ImportError:                     # by hand: no journal
    fleet_journal = None

DOCUMENTATION = """
    name: deploy_lines
    type: stdout
    short_description: uwsgi-deploy's push output for fleet deploys
    description:
        - A line per task, each host's stderr lines prefixed with the host, failures as one line.
"""

INDENT = "       "
WARN = " !     "
# the journal's phase for a task's tag
PHASE_OF = {"fleet_push": "push", "fleet_prepare": "prepare", "fleet_commit": "commit",
            "fleet_undo": "rollback", "fleet_abort": "abort"}


def _answer(result):
    """A phase's JSON answer, or {} (the journal's states only: the playbook
    checks answers itself, strictly)."""
    try:
        answer = json.loads(str(result.get("stdout") or ""))
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "deploy_lines"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._title = None      # the task's line, shown once a host ran it
        self._journal = None    # the journal's path, with -e journal=PATH

    # -- the journal ------------------------------------------------------------
    def _step(self, task):
        for tag in task.tags or ():
            if tag in PHASE_OF:
                return tag
        return None

    def _record(self, phase=None, **hosts):
        if self._journal is None:
            return
        try:
            fleet_journal.update(self._journal, phase=phase, hosts=hosts or None)
        except OSError as error:
            self._display.display(f"{WARN}the fleet journal {self._journal} could not be written: {error}")

    def _journal_result(self, result, outcome):
        """outcome: ok, failed or unreachable, of one host (or one loop item)."""
        step = self._step(result._task)
        if self._journal is None or step is None:
            return
        host = self._host(result)
        answer = _answer(result._result) if outcome == "ok" else {}
        timed_out = TIMED_OUT in str(result._result.get("msg", ""))
        if step == "fleet_prepare":
            state = {"ok": "prepared" if answer.get("prepared") is not False else "live already"}.get(outcome, "failed")
        elif step == "fleet_commit":
            if outcome == "ok":
                state = "committed" if answer.get("switched") is True else "live already" \
                    if answer.get("switched") is False else "unknown"
            else:
                state = "refused" if outcome == "failed" and not timed_out else "unknown"
        elif step == "fleet_undo":
            state = "rolled back" if outcome == "ok" else "unknown"
        elif step == "fleet_abort":
            state = "aborted" if outcome == "ok" else "failed"
        else:
            return
        self._record(**{host: state})

    def _ran(self):
        """A host ran the task (it was not skipped everywhere): its line shows."""
        if self._title is not None:
            title, self._title = self._title, None
            self._display.display(title)

    def _line(self, text):
        self._ran()
        self._display.display(text)

    @staticmethod
    def _host(result):
        """The host the task ran against. A loop that runs a command on every
        host from one (delegate_to: item) labels each item with its host."""
        label = result._result.get("_ansible_item_label")
        if result._task.delegate_to and isinstance(label, str) and label:
            return label
        return result._host.get_name()

    def _output(self, result):
        if (result._task.name or "").startswith("_") and not result.is_failed():
            return                                   # bookkeeping: its output is for the playbook
        host = self._host(result)
        for line in result._result.get("stderr_lines") or str(result._result.get("stderr", "")).splitlines():
            # a host's text: shown, never interpreted (no terminal escapes either)
            line = "".join(c if c.isprintable() else " " for c in str(line).rstrip("\r"))
            if line.strip():
                self._line(f"{host}: {line}")

    def _failure(self, result):
        self._output(result)
        message = result._result.get("msg", "")
        if result._task.action in ("fail", "ansible.builtin.fail"):
            self._line(WARN + str(message))        # the playbook's own verdict, already names the host
        elif TIMED_OUT in str(message):
            step = PHASE_OF.get(self._step(result._task), result._task.action.split(".")[-1])
            self._line(f"{WARN}{self._host(result)}: no answer within {result._task.timeout} s ({step})")
        elif not (result._result.get("stderr") or "").strip():
            self._line(f"{WARN}{self._host(result)}: {message or 'failed'}")

    # -- events -------------------------------------------------------------
    def v2_playbook_on_play_start(self, play):
        if self._journal is None and fleet_journal is not None:
            path = play.get_variable_manager().extra_vars.get("journal")
            self._journal = str(path) if path else None

    def v2_playbook_on_task_start(self, task, is_conditional):
        step = self._step(task)
        if step:
            self._record(phase=PHASE_OF[step])
        name = (task.name or "").strip()
        # unnamed or _name: a step of the task before, said nothing of its own
        self._title = f"-----> {name}" if name and not name.startswith("_") else None

    def v2_runner_on_start(self, host, task):
        if self._step(task) == "fleet_commit":
            self._record(**{host.get_name(): "committing"})   # from here on it may switch

    def v2_runner_on_ok(self, result):
        if "results" not in result._result:
            self._journal_result(result, "ok")
        self._ran()
        if result._task.action in ("debug", "ansible.builtin.debug"):
            message = result._result.get("msg")
            if message:
                for line in str(message).splitlines():
                    self._line(INDENT + line)
            return
        if "results" not in result._result:         # a loop: its items were shown
            self._output(result)

    def v2_runner_item_on_ok(self, result):
        self._journal_result(result, "ok")
        self._ran()
        self._output(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if "results" in result._result:
            return                                   # a loop: its items were shown
        self._journal_result(result, "failed")
        self._failure(result)

    def v2_runner_item_on_failed(self, result):
        self._journal_result(result, "failed")
        self._failure(result)

    def v2_runner_on_unreachable(self, result):
        if "results" in result._result:
            return                                   # a loop: its items were shown
        self._journal_result(result, "unreachable")
        self._line(f"{WARN}{self._host(result)}: unreachable: {ssh_failure(result._result.get('msg', ''))}")

    def v2_playbook_on_no_hosts_remaining(self):
        pass

    def v2_playbook_on_stats(self, stats):
        pass
