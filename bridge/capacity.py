"""Capacity admission: whether the host takes one more preview, checked before its first deploy.

A new preview, one without a directory under the previews' root, needs room: fewer
previews on the host than PREVIEWS_MAX_PREVIEWS (all projects count), MemAvailable of at
least PREVIEWS_MIN_FREE_MEMORY_MB and PREVIEWS_MIN_FREE_DISK_MB free on the previews'
root. An update of a preview that is already on the host is always admitted.

Over capacity, PREVIEWS_CAPACITY_POLICY decides. `reject` fails the deploy with the
reason. `wait` measures again until PREVIEWS_CAPACITY_WAIT_SECONDS have passed, then
rejects. `evict` removes the least recently used unpinned preview of the project with a
normal cleanup run. It evicts at most one per deploy, so a host far over its limits
rejects instead of emptying itself.

This runs in the run command, as root, on the host that the bridge's local inventory
deploys to. It reserves an admitted preview's directory under the admission lock, so two
first deploys at the same time never take the same room.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge import pins, registry
from bridge.intake import Intake
from bridge.models import PreviewRequest
from bridge.registry import Preview
from bridge.run_command import admission_lock, launch
from bridge.runner import new_ident
from bridge.settings import Settings
from bridge.stale import last_activity, request_times

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
WAIT_POLL_SECONDS = 10.0
PREVIEW_DIR_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}-pr[1-9][0-9]{0,6}$")
MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class Usage:
    """The host's preview count, free memory and free disk space, as admission measures them."""

    previews: int
    memory_available: int  # bytes
    disk_free: int  # bytes, available to unprivileged users


def measure(root: Path) -> Usage:
    """Count the preview directories under root and read free memory and disk space."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        names = []
    # Before site.yml made the root, the file system it will be on.
    disk = os.statvfs(root if root.exists() else root.parent)
    return Usage(
        previews=sum(1 for name in names if PREVIEW_DIR_NAME.fullmatch(name)),
        memory_available=read_memory_available(MEMINFO),
        disk_free=disk.f_bavail * disk.f_frsize,
    )


def read_memory_available(meminfo: Path) -> int:
    """Return MemAvailable from /proc/meminfo, in bytes."""
    for line in meminfo.read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable":
            return int(value.split()[0]) * 1024
    raise RuntimeError(f"{meminfo} has no MemAvailable line (Linux 3.14 or later has one)")


def shortfalls(usage: Usage, settings: Settings) -> list[str]:
    """Return why the host has no room for one more preview; empty when it has."""
    reasons = []
    if settings.max_previews and usage.previews >= settings.max_previews:
        noun = "preview" if usage.previews == 1 else "previews"
        reasons.append(
            f"{usage.previews} {noun} on the host, the maximum is {settings.max_previews}"
        )
    if usage.memory_available < settings.min_free_memory_mb * MIB:
        reasons.append(
            f"{usage.memory_available // MIB} MiB of memory available, "
            f"the minimum is {settings.min_free_memory_mb} MiB"
        )
    if usage.disk_free < settings.min_free_disk_mb * MIB:
        reasons.append(
            f"{usage.disk_free // MIB} MiB free on {settings.root}, "
            f"the minimum is {settings.min_free_disk_mb} MiB"
        )
    return reasons


@dataclass(frozen=True)
class HostAccess:
    """The functions that admission measures, cleans up and waits with; tests replace them."""

    measure: Callable[[Path], Usage] = measure
    launch: Callable[[Settings, PreviewRequest, str], int] = launch
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def admit(settings: Settings, request: PreviewRequest, host: HostAccess | None = None) -> str:
    """Decide whether the request may deploy; return the reason when it may not, else "".

    Only the first deploy of a preview is checked, and an admitted one gets its directory.
    """
    host = host or HostAccess()
    preview_dir = settings.root / settings.preview_id(request.number)
    if request.action != "deploy" or preview_dir.exists():
        return ""

    deadline = host.clock() + settings.capacity_wait_seconds
    while True:
        reasons = _try_to_reserve(settings, request, preview_dir, host)
        if not reasons:
            return ""
        remaining = deadline - host.clock()
        if settings.capacity_policy != "wait" or remaining <= 0:
            return _rejection(settings, reasons)
        # NOTE: a waiting run takes up one of the bridge's run slots, so with every slot
        # waiting, a "closed" that would free room waits too, until the time is up.
        logger.info("PR %s waits for capacity, %.0f s left: %s", request.number, remaining, reasons)
        host.sleep(min(WAIT_POLL_SECONDS, remaining))


def _try_to_reserve(
    settings: Settings, request: PreviewRequest, preview_dir: Path, host: HostAccess
) -> list[str]:
    with admission_lock(settings):
        reasons = shortfalls(host.measure(settings.root), settings)
        # The evict policy passes here once per deploy, since only wait tries again.
        if reasons and settings.capacity_policy == "evict":
            reasons = _evict_one(settings, request, reasons, host)
        if not reasons:
            # Root-owned and 0755, as preview_git creates it: the deploy takes it over.
            preview_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        return reasons


def _evict_one(
    settings: Settings, request: PreviewRequest, reasons: list[str], host: HostAccess
) -> list[str]:
    victim = least_recently_used(settings, exclude=request.number)
    if victim is None:
        return [*reasons, "no unpinned preview of this project to evict"]

    cleanup = PreviewRequest(action="cleanup", number=victim.number)
    ident = new_ident(settings, cleanup)
    logger.info(
        "evicting PR %s, the least recently used preview, for PR %s: run %s",
        victim.number,
        request.number,
        ident,
    )
    if host.launch(settings, cleanup, ident) != 0:
        return [*reasons, f"the cleanup of PR {victim.number} to make room failed (run {ident})"]
    after = shortfalls(host.measure(settings.root), settings)
    return [*after, f"PR {victim.number} was evicted"] if after else []


def least_recently_used(settings: Settings, exclude: int) -> Preview | None:
    """Return the project's preview on the host with the oldest last activity, or None.

    Pinned previews, previews with a run in progress and the requesting one never qualify.
    """
    pinned = pins.pinned(settings.pins_dir)
    requests = request_times(Intake(settings.state_dir))
    candidates = [
        preview
        for preview in registry.current(settings.runner_dir).values()
        if preview.id == settings.preview_id(preview.number)
        and preview.number != exclude
        and preview.id not in pinned
        and preview.status != "deploying"
        and (settings.root / preview.id).is_dir()
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda preview: (last_activity(preview, requests), preview.number))


def _rejection(settings: Settings, reasons: list[str]) -> str:
    policy = settings.capacity_policy
    waited = f" after waiting {settings.capacity_wait_seconds} s" if policy == "wait" else ""
    return (
        f"The host has no capacity for a new preview{waited} (capacity policy {policy}): "
        + "; ".join(reasons)
        + ". Close other pull requests or raise the capacity limits."
    )
