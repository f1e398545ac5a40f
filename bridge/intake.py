"""The bridge's durable state: accepted requests, seen deliveries and blocked requests.

Everything lives under the state directory as small JSON files, one concept per
subdirectory, written to a temporary file, flushed and renamed into place, so a killed
bridge leaves either the old file or the new one:

    pending/<N>.json   the latest accepted request of PR N that no run has taken yet
    started/<N>.json   the request of PR N whose run is in progress
    deliveries/<id>    one empty file per delivery id already accepted
    blocked/<N>.json   the latest request of PR N that the trust policy held back

A newer request of a PR replaces its pending one, so superseded pushes are never built.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridge.models import PreviewRequest

logger = logging.getLogger(__name__)

DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")
RECORD_NAME = re.compile(r"^[1-9][0-9]{0,6}\.json$")


@dataclass(frozen=True)
class Accepted:
    """A request the bridge answered 202 to, with the ident its run will have."""

    request: PreviewRequest
    ident: str
    accepted: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": self.request.model_dump(),
            "ident": self.ident,
            "accepted": self.accepted,
        }


@dataclass(frozen=True)
class Blocked:
    """A deploy request that the trust policy held back until someone approves its SHA."""

    request: PreviewRequest
    reason: str
    time: str

    def as_dict(self) -> dict[str, Any]:
        return {"request": self.request.model_dump(), "reason": self.reason, "time": self.time}


def now() -> str:
    """The current time in the registry's format, which sorts as text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Intake:
    """The files under the state directory; callers serialize the changes of one PR."""

    def __init__(self, state_dir: Path) -> None:
        self._dirs = {name: state_dir / name for name in ("pending", "started", "blocked")}
        self._deliveries = state_dir / "deliveries"

    def prepare(self) -> None:
        """Create the directories; only the bridge calls this, so it owns them."""
        for path in [self._deliveries, *self._dirs.values()]:
            path.mkdir(mode=0o750, parents=True, exist_ok=True)

    def put(self, accepted: Accepted) -> Accepted | None:
        """Persist an accepted request, replacing the PR's pending one; return the replaced."""
        number = accepted.request.number
        replaced = self._read_accepted("pending", number)
        _write_json(self._path("pending", number), accepted.as_dict())
        return replaced

    def take(self, number: int) -> Accepted | None:
        """Move the PR's pending request to started and return it, or None if none waits."""
        pending = self._path("pending", number)
        try:
            os.replace(pending, self._path("started", number))
        except FileNotFoundError:
            return None
        _sync_dir(pending.parent)
        return self._read_accepted("started", number)

    def finish(self, number: int) -> None:
        """Forget the PR's started request: its run has ended."""
        self._path("started", number).unlink(missing_ok=True)

    def recover(self, renew: Callable[[Accepted], Accepted]) -> list[int]:
        """Requeue requests whose run a stopped bridge never saw end; return the PRs waiting.

        A started request goes back to pending, under the ident renew gives it, unless a
        newer one replaced it. Its first run may have finished meanwhile or still go on:
        the next waits for the preview's lock, and running it again converges on the
        same preview.
        """
        for path in sorted(self._dirs["started"].glob("*.json")):
            started = _accepted(path)
            number = started.request.number if started else None
            if (
                started is not None
                and number is not None
                and not self._path("pending", number).exists()
            ):
                _write_json(self._path("pending", number), renew(started).as_dict())
            path.unlink()
        return sorted(accepted.request.number for accepted in self.pending())

    def pending(self) -> list[Accepted]:
        return self._read_all("pending")

    def started(self) -> list[Accepted]:
        return self._read_all("started")

    def seen(self, delivery: str) -> bool:
        """Return whether a request with this delivery id was already accepted."""
        return bool(DELIVERY.fullmatch(delivery)) and (self._deliveries / delivery).exists()

    def remember(self, delivery: str) -> None:
        if DELIVERY.fullmatch(delivery):
            (self._deliveries / delivery).touch()

    def forget_deliveries(self, older_than_days: int) -> int:
        """Remove delivery ids older than the retention; return how many went."""
        limit = time.time() - older_than_days * 86400
        removed = 0
        for path in self._deliveries.glob("*"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def block(self, blocked: Blocked) -> None:
        _write_json(self._path("blocked", blocked.request.number), blocked.as_dict())

    def unblock(self, number: int) -> None:
        self._path("blocked", number).unlink(missing_ok=True)

    def blocked(self) -> list[Blocked]:
        """Return the blocked requests, skipping a file that cannot be read."""
        result = []
        for path in sorted(self._dirs["blocked"].glob("*.json")):
            data = _read_json(path)
            try:
                request = PreviewRequest.model_validate(data["request"])
                result.append(Blocked(request, str(data["reason"]), str(data["time"])))
            except (KeyError, TypeError, ValidationError) as error:
                logger.warning("skipping unreadable blocked request %s: %s", path, error)
        return result

    def _path(self, kind: str, number: int) -> Path:
        return self._dirs[kind] / f"{number}.json"

    def _read_accepted(self, kind: str, number: int) -> Accepted | None:
        path = self._path(kind, number)
        return _accepted(path) if path.exists() else None

    def _read_all(self, kind: str) -> list[Accepted]:
        found = (_accepted(path) for path in self._dirs[kind].glob("*.json"))
        return sorted(
            (accepted for accepted in found if accepted is not None),
            key=lambda accepted: accepted.accepted,
        )


def _accepted(path: Path) -> Accepted | None:
    if not RECORD_NAME.fullmatch(path.name):
        return None
    data = _read_json(path)
    try:
        return Accepted(
            PreviewRequest.model_validate(data["request"]),
            str(data["ident"]),
            str(data["accepted"]),
        )
    except (KeyError, TypeError, ValidationError) as error:
        # Written by the bridge itself, so this is damage on disk; keep the file to look at.
        logger.error("cannot read accepted request %s: %s", path, error)
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.error("cannot read %s: %s", path, error)
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as file:
        json.dump(data, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _sync_dir(path.parent)


def _sync_dir(path: Path) -> None:
    """Flush a directory's entries, so a rename survives a crash of the host."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
