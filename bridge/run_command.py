"""The privileged run command: `previews run`, the one thing the bridge may run as root.

The bridge runs as an unprivileged user and starts every run through a sudo rule that
allows exactly this command with arguments of a fixed shape:

    previews run ACTION NUMBER SHA|- IDENT REF AUTHOR REPOSITORY

REF, AUTHOR and REPOSITORY are base64url without padding ("-" when empty), so that a
regular expression in the sudo rule can check every argument and no forge string ever
reaches sudo's command line as text. The command checks everything again, then starts the
playbook in a transient systemd unit of its own, outside the bridge's sandbox.

Root alone also starts the stale cleanup this way, a form that the sudo rule does not allow:

    previews run cleanup-stale IDENT MAX_AGE_DAYS NUMBER[,NUMBER...]
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bridge.models import PreviewRequest
from bridge.settings import Settings

logger = logging.getLogger(__name__)

# The bridge's sudo rule allows deploy and cleanup only, so only root starts a rollback.
IDENT = re.compile(
    r"^[0-9]{8}T[0-9]{12}Z_(?P<project>[a-z][a-z0-9]{0,19})-pr(?P<number>[1-9][0-9]{0,6})"
    r"_(?P<action>deploy|cleanup|rollback)_[0-9a-f]{6}$"
)
STALE_ACTION = "cleanup-stale"
# A stale cleanup covers several previews, so its ident names the project only.
STALE_IDENT = re.compile(
    r"^[0-9]{8}T[0-9]{12}Z_(?P<project>[a-z][a-z0-9]{0,19})_cleanup-stale_[0-9a-f]{6}$"
)
# Any run's ident, for looking a run's log up.
RUN_IDENT = re.compile(
    r"^[0-9]{8}T[0-9]{12}Z_[a-z][a-z0-9]{0,19}"
    r"(?:-pr[1-9][0-9]{0,6}_(?:deploy|cleanup)|_cleanup-stale)_[0-9a-f]{6}$"
)
NUMBER_LIST = re.compile(r"^[1-9][0-9]{0,6}(?:,[1-9][0-9]{0,6})*$")
MAX_STALE_AGE_DAYS = 3650
ENCODED = re.compile(r"^[A-Za-z0-9_-]{1,400}$")
EMPTY = "-"
# Lengths of the encoded fields: a 255-byte ref, a 45-byte login, a 140-byte full name.
MAX_ENCODED = {"ref": 340, "author": 60, "repository": 188}

RUN_UNIT_VARIABLE = "PREVIEWS_RUN_UNIT"


class RunArgumentError(ValueError):
    """An invalid argument of `previews run`; the message names the argument and the rule."""


def encode_field(value: str) -> str:
    """Encode a forge string as base64url without padding, or "-" when it is empty."""
    if not value:
        return EMPTY
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_field(name: str, text: str) -> str:
    """Decode what encode_field produced, rejecting anything else."""
    if text == EMPTY:
        return ""
    if not ENCODED.fullmatch(text) or len(text) > MAX_ENCODED[name]:
        raise RunArgumentError(f"{name}: expected base64url text or '-'")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise RunArgumentError(f"{name}: not valid base64url of UTF-8 text") from error


def run_arguments(request: PreviewRequest, ident: str) -> list[str]:
    """Return the arguments of `previews run` for a request, in the shape sudo allows."""
    return [
        "run",
        request.action,
        str(request.number),
        request.sha or EMPTY,
        ident,
        encode_field(request.ref),
        encode_field(request.author),
        encode_field(request.repository),
    ]


def parse_run_arguments(settings: Settings, arguments: list[str]) -> tuple[PreviewRequest, str]:
    """Check the arguments of `previews run` again and return the request and its ident."""
    if len(arguments) != 7:
        raise RunArgumentError(
            "expected ACTION NUMBER SHA|- IDENT REF AUTHOR REPOSITORY, "
            f"got {len(arguments)} arguments"
        )
    action, number, sha, ident, ref, author, repository = arguments

    match = IDENT.fullmatch(ident)
    if match is None:
        raise RunArgumentError("ident: expected <time>_<project>-pr<N>_<action>_<6 hex>")
    if match["project"] != settings.project:
        raise RunArgumentError(
            f"ident: project {match['project']} does not match the configured {settings.project}"
        )
    if match["action"] != action or match["number"] != number:
        raise RunArgumentError("ident: does not name this action and pull-request number")

    request = PreviewRequest.model_validate(
        {
            "action": action,
            "number": int(number) if number.isdigit() else -1,
            "sha": None if sha == EMPTY else sha,
            "ref": decode_field("ref", ref),
            "author": decode_field("author", author),
            "repository": decode_field("repository", repository),
        }
    )
    return request, ident


def stale_run_arguments(ident: str, max_age_days: int, numbers: list[int]) -> list[str]:
    """Return the arguments of `previews run` for a stale cleanup of the given PRs."""
    return ["run", STALE_ACTION, ident, str(max_age_days), ",".join(map(str, numbers))]


def parse_stale_arguments(settings: Settings, arguments: list[str]) -> tuple[str, int, list[int]]:
    """Check the arguments after `run cleanup-stale`; return the ident, the days and the PRs."""
    if len(arguments) != 3:
        raise RunArgumentError(
            f"expected {STALE_ACTION} IDENT MAX_AGE_DAYS NUMBER[,NUMBER...], "
            f"got {len(arguments)} arguments after {STALE_ACTION}"
        )
    ident, days, numbers = arguments

    match = STALE_IDENT.fullmatch(ident)
    if match is None:
        raise RunArgumentError("ident: expected <time>_<project>_cleanup-stale_<6 hex>")
    if match["project"] != settings.project:
        raise RunArgumentError(
            f"ident: project {match['project']} does not match the configured {settings.project}"
        )
    if not days.isdigit() or not 1 <= int(days) <= MAX_STALE_AGE_DAYS:
        raise RunArgumentError(f"max age: expected 1 to {MAX_STALE_AGE_DAYS} days, got {days!r}")
    if not NUMBER_LIST.fullmatch(numbers):
        raise RunArgumentError("numbers: expected pull-request numbers separated by commas")
    return ident, int(days), sorted({int(number) for number in numbers.split(",")})


def launch(settings: Settings, request: PreviewRequest, ident: str) -> int:
    """Start the run and wait for it; return its exit status (0 when it succeeded).

    An unprivileged caller goes through sudo, root calls the same command directly.
    """
    argv = [str(settings.executable), *run_arguments(request, ident)]
    if os.geteuid() != 0:
        argv = ["sudo", "--non-interactive", "--", *argv]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        logger.warning(
            "run %s ended with exit status %s: %s",
            ident,
            result.returncode,
            result.stderr.strip()[-2000:] or "no error output",
        )
    return result.returncode


def launch_stale(settings: Settings, ident: str, max_age_days: int, numbers: list[int]) -> int:
    """Start a stale cleanup run as root and wait for it; return its exit status."""
    argv = [str(settings.executable), *stale_run_arguments(ident, max_age_days, numbers)]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode


def in_run_unit(ident: str) -> bool:
    return os.environ.get(RUN_UNIT_VARIABLE) == ident


def run_unit_argv(settings: Settings, arguments: list[str], ident: str) -> list[str]:
    """Return the systemd-run command that runs `previews run` in a transient unit.

    The unit is started by PID 1, so the run escapes the bridge's sandbox (which keeps the
    file system read-only) and goes on if the bridge stops.
    """
    path = f"{settings.executable.parent}:/usr/sbin:/usr/bin:/sbin:/bin"
    environment = {
        RUN_UNIT_VARIABLE: ident,
        "PATH": path,
        "HOME": "/root",
        "PREVIEWS_PROJECT": settings.project,
        "PREVIEWS_PROJECT_DIR": str(settings.project_dir),
        "PREVIEWS_INVENTORY": str(settings.inventory),
        "PREVIEWS_DATA_DIR": str(settings.data_dir),
    }
    return [
        "systemd-run",
        "--wait",
        "--pipe",
        "--collect",
        "--quiet",
        f"--unit=previews-run-{ident}",
        f"--description=pr-previews run {ident}",
        # Runs once the unit's processes are gone, however they ended, and marks a run that
        # was killed before it wrote its status. The "-" keeps its failure from the result.
        f"--property=ExecStopPost=-{sys.executable} -m bridge.interrupted {ident}",
        *(f"--setenv={name}={value}" for name, value in environment.items()),
        "--",
        str(settings.executable),
        *arguments,
    ]


def share_artifacts(settings: Settings, ident: str) -> None:
    """Let the group of the runner directory (the bridge's) read the run's artifacts.

    ansible-runner creates them readable by root only.
    """
    group = settings.runner_dir.stat().st_gid
    folder = settings.runner_dir / "artifacts" / ident
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, 0, group)
        os.chmod(path, 0o750 if path.is_dir() else 0o640)


@contextmanager
def preview_lock(settings: Settings, number: int) -> Iterator[None]:
    """Hold the preview's lock file, waiting for a run of the same preview to end."""
    with _lock_file(settings, settings.preview_id(number)).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def idle_preview_locks(settings: Settings, numbers: list[int]) -> Iterator[list[int]]:
    """Hold the locks of those previews that no run holds, without waiting; yield their PRs.

    Never waiting means a stale cleanup cannot deadlock with a deploy that evicts.
    """
    with ExitStack() as stack:
        held = []
        for number in numbers:
            lock = stack.enter_context(_lock_file(settings, settings.preview_id(number)).open("w"))
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            held.append(number)
        yield held


@contextmanager
def admission_lock(settings: Settings) -> Iterator[None]:
    """Hold the host's admission lock, so two new previews never take the same room."""
    with _lock_file(settings, "admission").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _lock_file(settings: Settings, name: str) -> Path:
    settings.locks_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return settings.locks_dir / f"{name}.lock"
