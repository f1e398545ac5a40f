"""Run logs: the stdout file that ansible-runner writes into each run's artifacts."""

from __future__ import annotations

import json
import os
import re
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


def failure_message(folder: Path) -> str | None:
    """Return the message of the run's last failed task, or None when none can be read.

    The playbooks end a failed run with a task whose message names what failed and what
    serves now, so this is the line an operator needs first.
    """
    events = sorted((folder / "job_events").glob("*.json"), key=_event_counter, reverse=True)
    for path in events:
        try:
            event = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if event.get("event") == "runner_on_failed":
            message = (event.get("event_data", {}).get("res") or {}).get("msg")
            return str(message) if message else None
    return None


def _event_counter(path: Path) -> int:
    # ansible-runner names events <counter>-<uuid>.json.
    prefix = path.name.split("-", 1)[0]
    return int(prefix) if prefix.isdigit() else -1


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


# Colours and cursor moves that ansible may print.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# An Authorization header: everything after the name, scheme included, is secret.
AUTHORIZATION = re.compile(r"(?im)(authorization\s*[:=]\s*).+$")
# A token, password or secret in a URL, a header or an assignment, or a bearer token.
TOKEN_IN_TEXT = re.compile(r"(?i)((?:token|password|passwd|secret)\s*[=:]\s*|bearer\s+)[^\s&\"']+")
REDACTED = "[redacted]"
MAX_PUBLISHED_BYTES = 4 * 1024 * 1024


def redact(text: str, secrets: list[str]) -> str:
    """Return text without the given secrets, token parameters or terminal escapes."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = AUTHORIZATION.sub(lambda match: match.group(1) + REDACTED, text)
    text = TOKEN_IN_TEXT.sub(lambda match: match.group(1) + REDACTED, text)
    return ANSI_ESCAPE.sub("", text)


def publish(
    artifacts: Path, logs_dir: Path, tokens_dir: Path, preview_id: str, ident: str
) -> Path | None:
    """Write the run's output, redacted, where nginx serves it behind the preview's token.

    Every preview's token is redacted, not only this one's: a build may print anything.
    Returns the file written, or None when the host has no log directory (site.yml makes it).
    """
    if not logs_dir.is_dir():
        return None
    try:
        with (artifacts / ident / "stdout").open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - MAX_PUBLISHED_BYTES))
            output = file.read().decode("utf-8", "replace")
    except FileNotFoundError:
        output = ""
    secrets = [path.read_text().strip() for path in tokens_dir.glob("*") if path.is_file()]

    folder = logs_dir / preview_id
    folder.mkdir(mode=0o750, exist_ok=True)
    group = logs_dir.stat().st_gid
    os.chown(folder, 0, group)
    target = folder / f"{ident}.txt"
    temporary = folder / f".{ident}.tmp"
    temporary.write_text(redact(output, secrets))
    os.chown(temporary, 0, group)
    os.chmod(temporary, 0o640)
    os.replace(temporary, target)
    return target
