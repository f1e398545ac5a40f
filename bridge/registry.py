"""The registry: active previews, folded from ansible-runner's artifacts.

Every run records its preview's facts with set_stats under the key "preview". A preview is
active when its latest deploy succeeded or is in progress and no cleanup succeeded after it.
A stale cleanup run covers several previews: its facts list them under "ids", and the
playbook adds each preview that it removed to the list "previews_removed", which the fold
drops, whether or not the others failed.

Two caches sit beside the artifacts: index.json holds the facts of every finished run,
and fold.json the previews that the finished runs fold into, with the idents it covers.
The artifact folders stay the truth: a run missing from a cache is read from its folder,
a cache that names a run whose folder is gone is rebuilt, and so is a damaged or deleted
one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bridge.intake import Blocked

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
FOLD_NAME = "fold.json"
INDEX_VERSION = 1
STALE_ACTION = "cleanup-stale"
# The set_stats key that a stale cleanup appends each removed preview id to.
REMOVED_KEY = "previews_removed"
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
    def preview_ids(self) -> list[str]:
        """The previews this run is about: one, or those a stale cleanup was to remove."""
        if self.preview_id:
            return [self.preview_id]
        return _strings(self.facts.get("ids"))

    @property
    def removed(self) -> list[str]:
        """The previews that a stale cleanup removed."""
        return _strings(self.facts.get("removed"))

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
    last_time: str = ""
    blocked: str = ""
    blocked_sha: str = ""
    # Why the latest run failed, as the playbook recorded it.
    reason: str = ""
    # Set from the pins directory when listing; the fold and its caches leave it false.
    pinned: bool = False

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
    data = {
        "version": INDEX_VERSION,
        "runs": {ident: {"status": run.status, "facts": run.facts} for ident, run in runs.items()},
    }
    _write_cache(runner_dir, INDEX_NAME, data)


def _writable(runner_dir: Path) -> bool:
    return os.access(runner_dir, os.W_OK)


def _write_cache(runner_dir: Path, name: str, data: dict[str, Any]) -> None:
    """Write a cache atomically; a reader that may not write keeps what it read in memory."""
    if not _writable(runner_dir):
        return
    path = runner_dir / name
    temporary = runner_dir / f".{name}.{os.getpid()}.tmp"
    try:
        temporary.write_text(json.dumps(data, separators=(",", ":")))
        # Readable by the directory's group (the bridge's), like the artifacts.
        os.chmod(temporary, 0o640)
        os.chown(temporary, -1, runner_dir.stat().st_gid)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        logger.warning("cannot write the registry cache %s: %s", path, error)


def fold(runs: list[Run], previews: dict[str, Preview] | None = None) -> dict[str, Preview]:
    """Fold runs, oldest first, into the previews that are active after the last of them,
    starting from previews when given (which this changes)."""
    previews = {} if previews is None else previews
    for run in runs:
        if run.action == STALE_ACTION:
            # Only previews that are gone are recorded, so a failed run drops them too.
            for removed_id in run.removed:
                previews.pop(removed_id, None)
            continue
        preview_id = str(run.facts.get("id", ""))
        if not preview_id:
            continue
        if run.action == "cleanup":
            if run.status == "successful":
                previews.pop(preview_id, None)
            continue
        if run.action == "rollback":
            _apply_rollback(previews, preview_id, run)
            continue
        _apply_deploy(previews, preview_id, run)
    return previews


def current(runner_dir: Path) -> dict[str, Preview]:
    """Return the previews after every run, by id, from fold.json when it still applies.

    It applies when the artifacts hold every run it covers, and every run it does not
    cover started after the last one it does: those few are read and folded on top.
    Anything else refolds all runs and, where this process may write, rewrites the caches.
    """
    artifacts = runner_dir / "artifacts"
    if not artifacts.is_dir():
        return {}
    idents = set(os.listdir(artifacts))
    cached = _load_fold(runner_dir)
    if cached is not None:
        covered, last_time, previews = cached
        if covered <= idents:
            newer = [
                run for run in map(_read_folder, (artifacts / i for i in idents - covered)) if run
            ]
            newer.sort(key=lambda run: (run.time, run.ident))
            finished = any(run.status in FINAL_STATUSES for run in newer)
            if all(run.time >= last_time for run in newer) and not (
                finished and _writable(runner_dir)
            ):
                return fold(newer, previews)
    return refresh(runner_dir)


def refresh(runner_dir: Path) -> dict[str, Preview]:
    """Refold every run, rewrite both caches where allowed, and return the previews."""
    runs = read_runs(runner_dir)
    finished = [run for run in runs if run.status in FINAL_STATUSES]
    _save_fold(runner_dir, finished, fold(finished))
    return fold(runs)


def list_previews(runner_dir: Path) -> list[Preview]:
    """Return the active previews, ordered by pull-request number."""
    return sorted(current(runner_dir).values(), key=lambda preview: preview.number)


def _load_fold(runner_dir: Path) -> tuple[set[str], str, dict[str, Preview]] | None:
    path = runner_dir / FOLD_NAME
    try:
        data = json.loads(path.read_text())
        if data.get("version") != INDEX_VERSION:
            return None
        previews = {key: Preview(**value) for key, value in data["previews"].items()}
        return set(data["idents"]), str(data["last_time"]), previews
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("refolding the registry, %s is unreadable: %s", path, error)
        return None


def _save_fold(runner_dir: Path, finished: list[Run], previews: dict[str, Preview]) -> None:
    data = {
        "version": INDEX_VERSION,
        "idents": [run.ident for run in finished],
        "last_time": max((run.time for run in finished), default=""),
        "previews": {key: preview.as_dict() for key, preview in previews.items()},
    }
    _write_cache(runner_dir, FOLD_NAME, data)


def history(runs: Iterable[Run], preview_id: str) -> list[Run]:
    """Return the runs of one preview, stale cleanups that were to remove it included."""
    return [run for run in runs if preview_id in run.preview_ids]


def add_pins(previews: dict[str, Preview], pinned: Collection[str]) -> None:
    for preview_id, preview in previews.items():
        preview.pinned = preview_id in pinned


def add_blocked(
    previews: dict[str, Preview],
    blocked: Iterable[Blocked],
    preview_id: Callable[[int], str],
) -> None:
    """Show each blocked request that no run of its preview followed: the run of an
    approval or of a newer trusted push supersedes it."""
    for entry in blocked:
        request = entry.request
        key = preview_id(request.number)
        preview = previews.get(key)
        if preview is not None and preview.last_time >= entry.time:
            continue
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


def rotate(
    runner_dir: Path, requests_dir: Path, keep: int, logs_dir: Path | None = None
) -> list[str]:
    """Remove the artifacts, request files and published logs of old runs; return their idents.

    Every run of an active preview stays. Of the others, the last `keep` runs stay. A stale
    cleanup counts as a run of each preview it was to remove, so it stays as long as one of
    them keeps it: removing it would bring back the previews it removed.
    """
    runs = read_runs(runner_dir)
    kept = _runs_to_keep(runs, fold(runs), keep)

    removed = []
    for run in runs:
        if run.ident in kept or run.status not in FINAL_STATUSES:
            continue
        shutil.rmtree(runner_dir / "artifacts" / run.ident, ignore_errors=True)
        (requests_dir / f"{run.ident}.yml").unlink(missing_ok=True)
        if logs_dir is not None:
            for preview_id in run.preview_ids:
                (logs_dir / preview_id / f"{run.ident}.txt").unlink(missing_ok=True)
        removed.append(run.ident)
    refresh(runner_dir)
    return removed


def _runs_to_keep(runs: list[Run], active: dict[str, Preview], keep: int) -> set[str]:
    by_preview: dict[str, list[Run]] = {}
    for run in runs:
        # Runs that name no preview share one group, so the last `keep` of them stay.
        for preview_id in run.preview_ids or [""]:
            by_preview.setdefault(preview_id, []).append(run)
    kept: set[str] = set()
    for preview_id, preview_runs in by_preview.items():
        chosen = preview_runs if preview_id in active else preview_runs[-keep:]
        kept.update(run.ident for run in chosen)
    return kept


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
            last_time=time,
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
            last_time=time,
            reason=str(facts.get("reason", "")),
        )
        return
    current.status = status
    current.last_run = run.ident
    current.last_time = time
    current.reason = str(facts.get("reason", ""))


def _apply_rollback(previews: dict[str, Preview], preview_id: str, run: Run) -> None:
    """Fold a rollback: a successful one is a deploy of the SHA it rolled back to.

    A rollback that failed, or is still running, left the release that served before
    serving (the playbook returns to it), so only the latest run changes.
    """
    current = previews.get(preview_id)
    if current is None:
        # Nothing served, so the rollback found no release and changed nothing.
        return
    time = str(run.facts.get("time", ""))
    current.last_run = run.ident
    current.last_time = time
    if run.status != "successful":
        return
    current.sha = str(run.facts.get("sha", ""))
    current.updated = time
    current.status = "active"
    current.urls = dict(run.facts.get("urls") or current.urls)
    current.ports = dict(run.facts.get("ports") or current.ports)


def _preview_facts(job_events: Path) -> dict[str, Any] | None:
    """Return the "preview" stats of a run: from its final stats event, or while it is still
    running, from the latest set_stats task result."""
    if not job_events.is_dir():
        return None
    events = sorted(job_events.glob("*.json"), key=_event_counter, reverse=True)
    removed: list[str] = []
    facts: dict[str, Any] | None = None
    for path in events:
        try:
            event = json.loads(path.read_text())
        except PermissionError:
            # Events of a run in progress stay readable by root only until it ends.
            continue
        except FileNotFoundError:
            # ansible-runner renames event files while the run is in progress.
            continue
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("skipping unreadable event %s: %s", path, error)
            continue
        data = event.get("event_data", {})
        if event.get("event") == "playbook_on_stats":
            stats = data.get("artifact_data") or {}
            if isinstance(stats.get("preview"), dict):
                return _with_removed(stats["preview"], _strings(stats.get(REMOVED_KEY)))
        if event.get("event") == "runner_on_ok" and data.get("task_action", "").endswith(
            "set_stats"
        ):
            stats = (data.get("res") or {}).get("ansible_stats", {}).get("data", {})
            removed += _strings(stats.get(REMOVED_KEY))
            if facts is None and isinstance(stats.get("preview"), dict):
                facts = dict(stats["preview"])
                if facts.get("action") != STALE_ACTION:
                    return facts
    # A stale cleanup still running: every removal so far, from each task that recorded one.
    return None if facts is None else _with_removed(facts, removed)


def _with_removed(facts: dict[str, Any], removed: list[str]) -> dict[str, Any]:
    if facts.get("action") != STALE_ACTION:
        return facts
    return {**facts, "removed": removed}


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _event_counter(path: Path) -> int:
    prefix = path.name.split("-", 1)[0]
    return int(prefix) if prefix.isdigit() else -1


def overview(
    runner_dir: Path,
    blocked: Iterable[Blocked],
    preview_id: Callable[[int], str],
    pinned: Collection[str] = frozenset(),
) -> list[Preview]:
    """Return the previews, blocked ones included, ordered by number."""
    previews = current(runner_dir)
    add_blocked(previews, blocked, preview_id)
    add_pins(previews, pinned)
    return sorted(previews.values(), key=lambda preview: preview.number)
