"""Run logs: the stdout file that ansible-runner writes into each run's artifacts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

POLL_SECONDS = 0.5


def latest_run(artifacts: Path, preview_id: str) -> str | None:
    """Return the ident of the preview's latest run, started or finished.

    Idents begin with their start time, so the greatest one is the latest. This also finds
    a run that has not yet recorded its facts, which the registry does not list.
    """
    marker = f"_{preview_id}_"
    try:
        idents = [name for name in _names(artifacts) if marker in name]
    except FileNotFoundError:
        return None
    return max(idents, default=None)


def _names(path: Path) -> list[str]:
    return [entry.name for entry in path.iterdir()]


def copy_output(folder: Path, out: TextIO, follow: bool) -> str | None:
    """Copy the run's output to out; with follow, until the run ends.

    Return the run's final status, or None when it is still running and follow is off.
    """
    stdout = folder / "stdout"
    status_file = folder / "status"
    position = 0
    while True:
        # Read the status before the output, so no line written before the end is missed.
        status = _final_status(status_file)
        position = _copy_from(stdout, position, out)
        if status is not None or not follow:
            return status
        time.sleep(POLL_SECONDS)


def _final_status(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _copy_from(path: Path, position: int, out: TextIO) -> int:
    try:
        with path.open("rb") as file:
            file.seek(position)
            data = file.read()
    except FileNotFoundError:
        return position
    out.write(data.decode("utf-8", "replace"))
    out.flush()
    return position + len(data)
