# An Ansible stdout callback for the fleet playbooks: what a pusher reads.
# Each task is a `-----> title` line; the lines a host's command wrote on
# stderr (the tools' stage lines; stdout carries their JSON for the playbook)
# follow, each prefixed with the host's name; a failure is a ` !` line naming
# the host and the reason. Nothing else: no task banners, no JSON dumps.
from __future__ import annotations

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: deploy_lines
    type: stdout
    short_description: uwsgi-deploy's push output for fleet deploys
    description:
        - A line per task, each host's stderr lines prefixed with the host, failures as one line.
"""

INDENT = "       "
WARN = " !     "


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "deploy_lines"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._title = None      # the task's line, shown once a host ran it

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
            line = line.rstrip("\r")
            if line.strip():
                self._line(f"{host}: {line}")

    def _failure(self, result):
        self._output(result)
        message = result._result.get("msg", "")
        if result._task.action in ("fail", "ansible.builtin.fail"):
            self._line(WARN + str(message))        # the playbook's own verdict, already names the host
        elif not (result._result.get("stderr") or "").strip():
            self._line(f"{WARN}{self._host(result)}: {message or 'failed'}")

    # -- events -------------------------------------------------------------
    def v2_playbook_on_task_start(self, task, is_conditional):
        name = (task.name or "").strip()
        # unnamed or _name: a step of the task before, said nothing of its own
        self._title = f"-----> {name}" if name and not name.startswith("_") else None

    def v2_runner_on_ok(self, result):
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
        self._ran()
        self._output(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if "results" in result._result:
            return                                   # a loop: its items were shown
        self._failure(result)

    def v2_runner_item_on_failed(self, result):
        self._failure(result)

    def v2_runner_on_unreachable(self, result):
        self._line(f"{WARN}{self._host(result)}: unreachable: {result._result.get('msg', '').strip()}")

    def v2_playbook_on_no_hosts_remaining(self):
        pass

    def v2_playbook_on_stats(self, stats):
        pass
