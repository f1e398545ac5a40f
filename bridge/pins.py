"""Pins: previews that the stale cleanup and capacity eviction never remove.

A pin is a file named after the preview id in the pins directory, written by root with
`previews pin` and readable by everyone, so the bridge can show it. It contains the time
it was set. A pin outlives its preview: unpin a pull request that needs it no longer.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from bridge.intake import now

logger = logging.getLogger(__name__)

PREVIEW_ID = re.compile(r"^[a-z][a-z0-9]{0,19}-pr[1-9][0-9]{0,6}$")


def pin(pins_dir: Path, preview_id: str) -> bool:
    """Pin a preview; return False when it was pinned already."""
    _check(preview_id)
    pins_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        fd = os.open(pins_dir / preview_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        file.write(now() + "\n")
    return True


def unpin(pins_dir: Path, preview_id: str) -> bool:
    """Remove a preview's pin; return False when it had none."""
    _check(preview_id)
    try:
        (pins_dir / preview_id).unlink()
    except FileNotFoundError:
        return False
    return True


def pinned(pins_dir: Path, strict: bool = True) -> frozenset[str]:
    """Return the ids of the pinned previews; none when the directory is missing.

    An unreadable directory raises OSError, unless strict is off: only code that removes
    previews must stop there, and listing them shows them unpinned instead.
    """
    try:
        names = os.listdir(pins_dir)
    except FileNotFoundError:
        return frozenset()
    except OSError as error:
        if strict:
            raise
        logger.warning("cannot read the pins in %s: %s", pins_dir, error)
        return frozenset()
    return frozenset(name for name in names if PREVIEW_ID.fullmatch(name))


def _check(preview_id: str) -> None:
    if not PREVIEW_ID.fullmatch(preview_id):
        raise ValueError(f"invalid preview id {preview_id!r}: expected <project>-pr<N>")
