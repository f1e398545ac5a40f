"""The registry: active previews, folded from ansible-runner's artifacts.

Every run records its preview's facts with set_stats under the key "preview". A preview is
active when its latest deploy succeeded or is in progress and no cleanup succeeded after it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One ansible-runner run, as its artifact folder records it."""

    ident: str
    status: str
    facts: dict[str, Any]

    @property
    def action(self) -> str:
        return str(self.facts.get("action", self.ident.split("_")[2] if "_" in self.ident else ""))


@dataclass
class Preview:
    """An active preview: what serves, since when, and how its latest run went."""

    id: str
    number: int
    sha: str
    ref: str
    author: str
    created: str
    updated: str
    status: str
    urls: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    last_run: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_run(folder: Path) -> Run | None:
    """Read one artifact folder, or return None when it contains no preview facts yet."""
    status_file = folder / "status"
    status = status_file.read_text().strip() if status_file.exists() else "running"
    facts = _preview_facts(folder / "job_events")
    if facts is None:
        return None
    return Run(ident=folder.name, status=status, facts=facts)


def read_runs(runner_dir: Path) -> list[Run]:
    """Read every run in the private data directory, oldest first by the time each recorded."""
    artifacts = runner_dir / "artifacts"
    if not artifacts.is_dir():
        return []
    runs = []
    for folder in artifacts.iterdir():
        try:
            run = read_run(folder)
        except PermissionError:
            # A run still in progress keeps its artifacts readable by root only.
            continue
        if run is not None:
            runs.append(run)
    return sorted(runs, key=lambda run: (str(run.facts.get("time", "")), run.ident))


def fold(runs: list[Run]) -> dict[str, Preview]:
    """Fold runs, oldest first, into the previews that are active after the last of them."""
    previews: dict[str, Preview] = {}
    for run in runs:
        preview_id = str(run.facts.get("id", ""))
        if not preview_id:
            continue
        if run.action == "cleanup":
            if run.status == "successful":
                previews.pop(preview_id, None)
            continue
        _apply_deploy(previews, preview_id, run)
    return previews


def list_previews(runner_dir: Path) -> list[Preview]:
    """Return the active previews, ordered by pull-request number."""
    return sorted(fold(read_runs(runner_dir)).values(), key=lambda preview: preview.number)


def _apply_deploy(previews: dict[str, Preview], preview_id: str, run: Run) -> None:
    facts = run.facts
    time = str(facts.get("time", ""))
    current = previews.get(preview_id)

    if run.status == "successful":
        previews[preview_id] = Preview(
            id=preview_id,
            number=int(facts.get("number", 0)),
            sha=str(facts.get("sha", "")),
            ref=str(facts.get("ref", "")),
            author=str(facts.get("author", "")),
            created=current.created if current else time,
            updated=time,
            status="active",
            urls=dict(facts.get("urls") or {}),
            ports=dict(facts.get("ports") or {}),
            last_run=run.ident,
        )
        return

    status = "deploying" if run.status == "running" else "failed"
    if current is None or not current.sha:
        # No deploy has succeeded yet: nothing serves, but operators see the latest attempt.
        previews[preview_id] = Preview(
            id=preview_id,
            number=int(facts.get("number", 0)),
            sha="",
            ref=str(facts.get("ref", "")),
            author=str(facts.get("author", "")),
            created=current.created if current else time,
            updated=time,
            status=status,
            last_run=run.ident,
        )
        return
    current.status = status
    current.last_run = run.ident


def _preview_facts(job_events: Path) -> dict[str, Any] | None:
    """Return the "preview" stats of a run: from its final stats event, or while it is still
    running, from the latest set_stats task result."""
    if not job_events.is_dir():
        return None
    events = sorted(job_events.glob("*.json"), key=_event_counter, reverse=True)
    for path in events:
        try:
            event = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("skipping unreadable event %s: %s", path, error)
            continue
        data = event.get("event_data", {})
        if event.get("event") == "playbook_on_stats":
            preview = (data.get("artifact_data") or {}).get("preview")
            if isinstance(preview, dict):
                return preview
        if event.get("event") == "runner_on_ok" and data.get("task_action", "").endswith(
            "set_stats"
        ):
            stats = (data.get("res") or {}).get("ansible_stats", {}).get("data", {})
            if isinstance(stats.get("preview"), dict):
                return dict(stats["preview"])
    return None


def _event_counter(path: Path) -> int:
    prefix = path.name.split("-", 1)[0]
    return int(prefix) if prefix.isdigit() else -1
