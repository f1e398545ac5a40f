"""The registry: active previews, folded from ansible-runner's artifacts.

Every run records its preview's facts with set_stats under the key "preview". A preview is
active when its latest deploy succeeded or is in progress and no cleanup succeeded after it.

The facts of finished runs are cached in index.json beside the artifacts. The artifact
folders stay the truth: a run missing from the index is read from its folder, an indexed
run whose folder is gone is dropped, and a damaged or deleted index is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bridge.intake import Blocked

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
INDEX_VERSION = 1
# ansible-runner's final statuses; a run without one may still change.
FINAL_STATUSES = frozenset({"successful", "failed", "canceled", "timeout"})


@dataclass(frozen=True)
class Run:
    """One ansible-runner run, as its artifact folder records it."""

    ident: str
    status: str
    facts: dict[str, Any]

    @property
    def action(self) -> str:
        return str(self.facts.get("action", self.ident.split("_")[2] if "_" in self.ident else ""))

    @property
    def preview_id(self) -> str:
        return str(self.facts.get("id", ""))

    @property
    def time(self) -> str:
        return str(self.facts.get("time", ""))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ident": self.ident,
            "action": self.action,
            "status": self.status,
            "time": self.time,
            "sha": str(self.facts.get("sha", "")),
            "ref": str(self.facts.get("ref", "")),
            "author": str(self.facts.get("author", "")),
        }


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
    blocked: str = ""
    blocked_sha: str = ""

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
    """Read every run in the private data directory, oldest first by the time each recorded.

    Finished runs come from the index when it has them; the others are read from their
    folders, and the index is brought up to date when this process may write it.
    """
    artifacts = runner_dir / "artifacts"
    if not artifacts.is_dir():
        return []
    index = _load_index(runner_dir)
    runs = []
    added = False
    idents = os.listdir(artifacts)
    for ident in idents:
        run = index.get(ident)
        if run is None:
            run = _read_folder(artifacts / ident)
            if run is not None and run.status in FINAL_STATUSES:
                index[ident] = run
                added = True
        if run is not None:
            runs.append(run)
    if added or not index.keys() <= set(idents):
        _save_index(runner_dir, {run.ident: run for run in runs if run.status in FINAL_STATUSES})
    return sorted(runs, key=lambda run: (run.time, run.ident))


def _read_folder(folder: Path) -> Run | None:
    try:
        return read_run(folder)
    except PermissionError:
        # A run still in progress keeps its artifacts readable by root only.
        return None
    except OSError as error:
        logger.warning("skipping unreadable run %s: %s", folder.name, error)
        return None


def _load_index(runner_dir: Path) -> dict[str, Run]:
    path = runner_dir / INDEX_NAME
    try:
        data = json.loads(path.read_text())
        if data.get("version") != INDEX_VERSION:
            return {}
        return {
            ident: Run(ident=ident, status=str(entry["status"]), facts=dict(entry["facts"]))
            for ident, entry in data["runs"].items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("rebuilding the registry index, %s is unreadable: %s", path, error)
        return {}


def _save_index(runner_dir: Path, runs: dict[str, Run]) -> None:
    """Write the index atomically; a reader that may not write it keeps it in memory only."""
    if not os.access(runner_dir, os.W_OK):
        return
    path = runner_dir / INDEX_NAME
    temporary = runner_dir / f".{INDEX_NAME}.{os.getpid()}.tmp"
    data = {
        "version": INDEX_VERSION,
        "runs": {ident: {"status": run.status, "facts": run.facts} for ident, run in runs.items()},
    }
    try:
        temporary.write_text(json.dumps(data, separators=(",", ":")))
        # Readable by the directory's group (the bridge's), like the artifacts.
        os.chmod(temporary, 0o640)
        os.chown(temporary, -1, runner_dir.stat().st_gid)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        logger.warning("cannot write the registry index %s: %s", path, error)


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


def history(runs: Iterable[Run], preview_id: str) -> list[Run]:
    """Return the runs of one preview, oldest first."""
    return [run for run in runs if run.preview_id == preview_id]


def add_blocked(
    previews: dict[str, Preview],
    runs: list[Run],
    blocked: Iterable[Blocked],
    preview_id: Callable[[int], str],
) -> None:
    """Show each blocked request that no run of its preview followed: the run of an
    approval, a newer trusted push or a cleanup supersedes it."""
    last_run = {run.preview_id: run.time for run in runs}
    for entry in blocked:
        request = entry.request
        key = preview_id(request.number)
        if last_run.get(key, "") >= entry.time:
            continue
        preview = previews.get(key)
        if preview is None:
            preview = Preview(
                id=key,
                number=request.number,
                sha="",
                ref=request.ref,
                author=request.author,
                created=entry.time,
                updated=entry.time,
                status="blocked",
            )
            previews[key] = preview
        preview.blocked = entry.reason
        preview.blocked_sha = request.sha or ""


def rotate(runner_dir: Path, requests_dir: Path, keep: int) -> list[str]:
    """Remove the artifacts and request files of old runs; return the idents removed.

    Every run of an active preview stays. Of the others, the last `keep` runs stay.
    """
    runs = read_runs(runner_dir)
    active = fold(runs)
    by_preview: dict[str, list[Run]] = {}
    for run in runs:
        by_preview.setdefault(run.preview_id, []).append(run)

    removed = []
    for preview_id, preview_runs in by_preview.items():
        if preview_id in active:
            continue
        for run in preview_runs[:-keep]:
            if run.status not in FINAL_STATUSES:
                continue
            shutil.rmtree(runner_dir / "artifacts" / run.ident, ignore_errors=True)
            (requests_dir / f"{run.ident}.yml").unlink(missing_ok=True)
            removed.append(run.ident)
    if removed:
        read_runs(runner_dir)
    return removed


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


def overview(
    runner_dir: Path, blocked: Iterable[Blocked], preview_id: Callable[[int], str]
) -> tuple[list[Preview], list[Run]]:
    """Return the previews, blocked ones included, ordered by number, and all runs."""
    runs = read_runs(runner_dir)
    previews = fold(runs)
    add_blocked(previews, runs, blocked, preview_id)
    return sorted(previews.values(), key=lambda preview: preview.number), runs
