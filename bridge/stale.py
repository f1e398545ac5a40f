"""Stale previews: those with no activity for a number of days, and their cleanup run.

A preview's last activity is the later of its last run of any kind, failed deploys
included, and the last request for it that the bridge holds: blocked, waiting or started.
The day a preview was created does not count. A pinned preview is never stale.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bridge import pins, registry
from bridge.intake import Intake
from bridge.registry import Preview
from bridge.run_command import idle_preview_locks, share_artifacts
from bridge.runner import run_stale_playbook
from bridge.settings import Settings

logger = logging.getLogger(__name__)

# The registry's time format, which sorts as text.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class StalePreview:
    number: int
    id: str
    last_activity: str


def last_activity(preview: Preview, requests: Mapping[int, str]) -> str:
    """Return the time of the preview's last run or of the last request for it."""
    return max(preview.last_time, preview.updated, requests.get(preview.number, ""))


def select_stale(
    previews: Iterable[Preview],
    requests: Mapping[int, str],
    pinned: Collection[str],
    now: datetime,
    max_age_days: int,
) -> list[StalePreview]:
    """Return the previews whose last activity is more than max_age_days before now."""
    cutoff = (now - timedelta(days=max_age_days)).strftime(TIME_FORMAT)
    stale = []
    for preview in sorted(previews, key=lambda preview: preview.number):
        activity = last_activity(preview, requests)
        # A preview without any recorded time is never guessed to be stale.
        if preview.id in pinned or not activity or activity >= cutoff:
            continue
        stale.append(StalePreview(preview.number, preview.id, activity))
    return stale


def request_times(intake: Intake) -> dict[int, str]:
    """Return, per PR, the time of the latest request that the bridge holds."""
    times: dict[int, str] = {}
    for blocked in intake.blocked():
        times[blocked.request.number] = blocked.time
    for accepted in [*intake.pending(), *intake.started()]:
        number = accepted.request.number
        times[number] = max(times.get(number, ""), accepted.accepted)
    return times


def find_stale(settings: Settings, max_age_days: int) -> list[StalePreview]:
    """Return this project's stale previews, from the registry, the bridge's state and pins.

    Raises OSError when the pins cannot be read, because a pinned preview must never go.
    """
    previews = [
        preview
        for preview in registry.current(settings.runner_dir).values()
        if preview.id == settings.preview_id(preview.number)
    ]
    return select_stale(
        previews,
        request_times(Intake(settings.state_dir)),
        pins.pinned(settings.pins_dir),
        datetime.now(UTC),
        max_age_days,
    )


def run_cleanup(settings: Settings, ident: str, max_age_days: int, numbers: list[int]) -> int:
    """Remove those of the given PRs' previews that are still stale, in one playbook run.

    Runs as root in the run's unit. A preview whose lock another run holds, or that became
    active or was pinned since the PRs were chosen, stays. Returns the exit status.
    """
    with idle_preview_locks(settings, numbers) as idle:
        still_stale = {preview.number for preview in find_stale(settings, max_age_days)}
        chosen = [number for number in idle if number in still_stale]
        if not chosen:
            logger.info("run %s: none of PRs %s is stale any more", ident, numbers)
            return 0
        status = run_stale_playbook(settings, chosen, ident)
    share_artifacts(settings, ident)
    registry.rotate(
        settings.runner_dir, settings.requests_dir, settings.keep_runs, settings.logs_dir
    )
    return 0 if status == "successful" else 1
