"""Stand-ins for the run command, which needs root and a host: they record the runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Call:
    number: int
    action: str
    sha: str | None
    ident: str
    ref: str = ""


class Launcher:
    """Records every run; runs of the PRs in `hold` wait until release() is called."""

    def __init__(self, status: int = 0, hold: set[int] | None = None) -> None:
        self.calls: list[Call] = []
        self.status = status
        self.hold = hold or set()
        self.active = 0
        self.most_active = 0
        self._released = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, settings, request, ident) -> int:
        with self._lock:
            self.calls.append(Call(request.number, request.action, request.sha, ident, request.ref))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        if request.number in self.hold:
            self._released.wait(20)
        with self._lock:
            self.active -= 1
        return self.status

    def release(self) -> None:
        self._released.set()

    def of(self, number: int) -> list[Call]:
        return [call for call in self.calls if call.number == number]


def wait_for(predicate: Callable[[], object], timeout: float = 10) -> None:
    """Wait until predicate() is true; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def write_run(root: Path, ident: str, status: str | None, facts: dict) -> None:
    """Write an artifact folder laid out like ansible-runner's."""
    folder = root / "artifacts" / ident
    (folder / "job_events").mkdir(parents=True)
    if status is not None:
        (folder / "status").write_text(status)
        (folder / "rc").write_text("0" if status == "successful" else "2")
        event = {"event": "playbook_on_stats", "event_data": {"artifact_data": {"preview": facts}}}
        (folder / "job_events" / "9-stats.json").write_text(json.dumps(event))
    else:
        event = {
            "event": "runner_on_ok",
            "event_data": {
                "task_action": "ansible.builtin.set_stats",
                "res": {"ansible_stats": {"data": {"preview": facts}}},
            },
        }
        (folder / "job_events" / "3-setstats.json").write_text(json.dumps(event))
