"""Record runs of ansible-playbook started by hand in the registry, as ansible-runner would.

ansible-runner writes each run's artifacts itself; a playbook run by hand writes none, so
an operator's `ansible-playbook playbooks/deploy.yml ...` would be missing from
`previews list`. This callback writes such a run's artifact folder in runner's layout
(job_events/, stdout, status, rc) once the playbook records a preview with set_stats.
It does nothing under ansible-runner, and warns when the registry is not writable.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: previews_registry
type: notification
short_description: record runs started by hand in the pr-previews registry
description:
  - Writes an ansible-runner artifact folder for each playbook run that records a preview
    with set_stats, under PREVIEWS_DATA_DIR (default /var/lib/pr-previews)/runner.
  - Disabled under ansible-runner, which writes the artifacts itself.
requirements:
  - enabled in callbacks_enabled (the project's ansible.cfg does this)
"""

SETTINGS_FILE = Path("/etc/pr-previews/previews.env")
DEFAULT_DATA_DIR = "/var/lib/pr-previews"
DEFAULT_PROJECT = "demo"
PR_NUMBER = re.compile(r"^[1-9][0-9]{0,6}$")
PREVIEW_ID = re.compile(r"^[a-z][a-z0-9]{0,19}-pr[1-9][0-9]{0,6}$")
PROJECT = re.compile(r"^[a-z][a-z0-9]{0,19}$")
STALE_ACTION = "cleanup-stale"
REMOVED_KEY = "previews_removed"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "previews_registry"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        # ansible-runner sets this for its own callback; it records the run itself.
        self._disabled = bool(os.environ.get("AWX_ISOLATED_DATA_DIR"))
        self._artifacts = _data_dir() / "runner" / "artifacts"
        self._folder: Path | None = None
        self._counter = 0
        self._pending: list[str] = []
        self._lock: TextIO | None = None

    def v2_playbook_on_play_start(self, play: Any) -> None:
        """Take the preview's lock, as `previews run` does, so that a run by hand never
        overlaps a run of the bridge on the same preview."""
        if self._disabled or self._lock is not None:
            return
        number = str(play.get_variable_manager().extra_vars.get("preview_pr", ""))
        locks = _data_dir() / "locks"
        if not PR_NUMBER.fullmatch(number) or not os.access(locks.parent, os.W_OK):
            return
        locks.mkdir(mode=0o700, exist_ok=True)
        preview_id = f"{_setting('PREVIEWS_PROJECT') or DEFAULT_PROJECT}-pr{number}"
        self._lock = (locks / f"{preview_id}.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._display.display(f"pr-previews: waiting for the run in progress of {preview_id}")
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._log(f"TASK [{task.get_name()}]")

    def v2_runner_on_ok(self, result: Any) -> None:
        self._log(f"ok: [{result._host.get_name()}]")
        if self._disabled or not result._task.action.endswith("set_stats"):
            return
        stats = result._result.get("ansible_stats", {}).get("data", {})
        preview = stats.get("preview")
        if isinstance(preview, dict):
            self._start(preview)
        # A stale cleanup records each removed preview on its own, without "preview".
        if isinstance(preview, dict) or REMOVED_KEY in stats:
            self._event(
                "runner_on_ok",
                {"task_action": result._task.action, "res": {"ansible_stats": {"data": stats}}},
            )

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        message = result._result.get("msg", "")
        self._log(f"fatal: [{result._host.get_name()}]: FAILED! {message}")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._log(f"fatal: [{result._host.get_name()}]: UNREACHABLE!")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        folder = self._folder
        if folder is None:
            return
        summaries = [stats.summarize(host) for host in stats.processed]
        failed = any(summary["failures"] or summary["unreachable"] for summary in summaries)
        self._event("playbook_on_stats", {"artifact_data": stats.custom.get("_run", {})})
        status = "failed" if failed else "successful"
        self._log(f"PLAY RECAP: {status}")
        _write(folder, "rc", "2" if failed else "0")
        # The status file comes last: the registry reads a run with one as finished.
        _write(folder, "status", status)
        _share(folder, self._artifacts.parent.stat().st_gid)

    def _start(self, preview: dict[str, Any]) -> None:
        if self._folder is not None:
            return
        subject = _subject(preview)
        if subject is None:
            return
        if not os.access(self._artifacts.parent, os.W_OK):
            self._display.warning(
                f"this run is not recorded in the pr-previews registry: "
                f"{self._artifacts.parent} is not writable (run ansible-playbook as root)"
            )
            self._disabled = True
            return
        started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        ident = f"{started}_{subject}_{secrets.token_hex(3)}"
        self._folder = self._artifacts / ident
        (self._folder / "job_events").mkdir(parents=True, mode=0o700)
        # A run by hand has no unit, so its process is what shows `previews reconcile` and
        # later runs whether a run without a status still goes on or was killed.
        _write(self._folder, "process.json", json.dumps(_this_process()))
        _write(self._folder, "stdout", "".join(self._pending))
        self._display.display(f"pr-previews: recording this run as {ident}")

    def _event(self, name: str, data: dict[str, Any]) -> None:
        if self._folder is None:
            return
        self._counter += 1
        event_uuid = str(uuid.uuid4())
        event = {
            "uuid": event_uuid,
            "counter": self._counter,
            "event": name,
            "runner_ident": self._folder.name,
            "created": datetime.now(UTC).isoformat(),
            "event_data": data,
        }
        _write(self._folder, f"job_events/{self._counter}-{event_uuid}.json", json.dumps(event))

    def _log(self, line: str) -> None:
        if self._folder is None:
            self._pending.append(line + "\n")
            return
        with (self._folder / "stdout").open("a") as file:
            file.write(line + "\n")


def _subject(preview: dict[str, Any]) -> str | None:
    """Return the middle of the run's ident, as the run command names it, or None.

    A stale cleanup covers several previews, so its ident names the project instead.
    """
    action = str(preview.get("action", ""))
    if action == STALE_ACTION:
        project = str(preview.get("project", ""))
        return f"{project}_{action}" if PROJECT.fullmatch(project) else None
    preview_id = str(preview.get("id", ""))
    if PREVIEW_ID.fullmatch(preview_id) and action in ("deploy", "cleanup", "rollback"):
        return f"{preview_id}_{action}"
    return None


def _write(folder: Path, name: str, text: str) -> None:
    """Write a file of the run whole, so the registry never reads half an event."""
    path = folder / name
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _this_process() -> dict[str, int]:
    """Return this process's PID and its start time in clock ticks since boot.

    The start time (proc(5), field 22) distinguishes it from a later process with the same PID.
    """
    stat = Path("/proc/self/stat").read_text()
    return {"pid": os.getpid(), "start_time": int(stat.rsplit(")", 1)[1].split()[19])}


def _share(folder: Path, group: int) -> None:
    """Let the runner directory's group (the bridge's) read the run, as runs do."""
    for path in [folder, *folder.rglob("*")]:
        try:
            os.chown(path, -1, group)
            os.chmod(path, 0o750 if path.is_dir() else 0o640)
        except PermissionError:
            return


def _data_dir() -> Path:
    return Path(_setting("PREVIEWS_DATA_DIR") or DEFAULT_DATA_DIR)


def _setting(variable: str) -> str:
    """Return a setting from the environment or the settings file, as the CLI reads it."""
    value = os.environ.get(variable)
    if value is None and SETTINGS_FILE.is_file():
        for line in SETTINGS_FILE.read_text().splitlines():
            name, _, text = line.partition("=")
            if name.strip() == variable:
                value = text.strip()
    return value or ""
