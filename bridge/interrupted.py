"""Runs that died midway: found by their missing status file and marked as canceled.

ansible-runner writes a run's `rc` and `status` files when the playbook ends. A run whose
process was killed (SIGKILL of the run command or of its unit, a host crash) never writes
them, and the registry would show its preview as "deploying" forever. Such a run gets the
files ansible-runner writes for a canceled run, so the registry folds it as failed.

Only a run that is certainly dead is marked, because ansible-runner overwrites the status
of a run that is still alive when it ends, and the registry caches a final status for good:

- a run of `previews run` has ansible-runner's `command` file in its folder. It is dead
  when its transient unit `previews-run-<ident>` is no longer active. It is also dead for
  a caller that holds the preview's lock, which such a run keeps while ansible-runner
  works, and for the unit's own ExecStopPost= command;
- a run of ansible-playbook started by hand (the registry callback writes `process.json`)
  is dead when its process is gone.
A folder with neither file is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bridge.run_command import IDENT, RUN_IDENT
from bridge.settings import Settings

logger = logging.getLogger(__name__)

CANCELED = "canceled"
# The rc that ansible-runner 2.4 writes for a canceled run (ansible_runner/runner.py).
CANCELED_RC = 254
# Written by ansible-runner into every run's folder before the playbook starts.
RUNNER_COMMAND_FILE = "command"
# Written by plugins/callback/previews_registry.py for a run of ansible-playbook by hand.
HAND_RUN_PROCESS_FILE = "process.json"
RUN_UNIT_PREFIX = "previews-run-"
# Unit states in which the run's processes may still write its artifacts.
LIVE_UNIT_STATES = frozenset({"active", "activating", "deactivating", "reloading", "refreshing"})


def run_folders(artifacts: Path, preview_id: str | None = None) -> list[Path]:
    """Return the run folders of one preview or of all, oldest first.

    Idents start with the run's start time, so their order is the order the runs started.
    """
    try:
        folders = sorted(artifacts.iterdir())
    except FileNotFoundError:
        return []
    marker = f"_{preview_id}_" if preview_id else ""
    return [folder for folder in folders if marker in folder.name and folder.is_dir()]


def unfinished_runs(artifacts: Path, preview_id: str | None = None) -> list[Path]:
    """Return the run folders without a status file, of one preview or of all."""
    return [
        folder for folder in run_folders(artifacts, preview_id) if not (folder / "status").exists()
    ]


def active_run_units() -> set[str]:
    """Return the idents whose `previews-run-<ident>` unit may still be running."""
    result = subprocess.run(
        [
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--type=service",
            f"{RUN_UNIT_PREFIX}*",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"systemctl list-units failed ({result.returncode}): {result.stderr.strip()}"
        )
    idents = set()
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] in LIVE_UNIT_STATES:
            name = fields[0].removesuffix(".service")
            idents.add(name.removeprefix(RUN_UNIT_PREFIX))
    return idents


def is_dead(folder: Path, live_units: set[str]) -> bool:
    """Return whether the run of folder can no longer write its status (see the module).

    live_units contains the idents whose unit may still run. A caller that knows that the
    runs of `previews run` it checks have ended passes an empty set.
    """
    if (folder / RUNNER_COMMAND_FILE).exists():
        return folder.name not in live_units
    process = _hand_run_process(folder / HAND_RUN_PROCESS_FILE)
    if process is None:
        return False
    pid, start_time = process
    return _process_start_time(pid) != start_time


def mark_canceled(folder: Path) -> bool:
    """Write the rc and status of a canceled run; return False if a status appeared meanwhile.

    The status is linked into place, which fails when the file exists, so a status that
    ansible-runner wrote at the last moment is never replaced.
    """
    group = folder.stat().st_gid
    _write(folder / "rc", f"{CANCELED_RC}", group)
    temporary = folder / f".status.{os.getpid()}.tmp"
    _write(temporary, CANCELED, group)
    try:
        os.link(temporary, folder / "status")
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    _append_note(folder / "stdout", group)
    logger.info("run %s ended without a status: marked %s", folder.name, CANCELED)
    return True


def mark_dead_runs(
    artifacts: Path, preview_id: str | None = None, live_units: set[str] | None = None
) -> list[str]:
    """Mark every unfinished run that is dead as canceled; return their idents.

    Without live_units, the run units that may still run are read from systemd.
    """
    folders = unfinished_runs(artifacts, preview_id)
    if not folders:
        return []
    if live_units is None:
        # Listed after the folders: a run whose folder exists started its unit before, so
        # a unit missing from this list has ended, and a status missing after it never comes.
        live_units = active_run_units()
    return [
        folder.name for folder in folders if is_dead(folder, live_units) and mark_canceled(folder)
    ]


def mark_earlier_runs(artifacts: Path, preview_id: str) -> None:
    """Mark the preview's dead runs as canceled, for a caller that holds the preview's lock.

    Runs of `previews run` keep that lock while ansible-runner works, so theirs are dead
    whatever their units do. A failure is logged: it must not keep the caller's own run
    from starting.
    """
    try:
        mark_dead_runs(artifacts, preview_id, live_units=set())
    except OSError as error:
        logger.warning("cannot mark the interrupted runs of %s: %s", preview_id, error)


def interrupted_since_success(artifacts: Path, preview_id: str, ident: str) -> bool:
    """Return whether a run of the preview was canceled after its last successful run.

    A killed run may have changed a vhost, a unit file or the current release without
    applying the change, and the next run, finding the files as it wants them, would not
    apply it either. The run ident is the caller's own run, which is left out.
    """
    for folder in reversed(run_folders(artifacts, preview_id)):
        if folder.name == ident:
            continue
        try:
            status = (folder / "status").read_text().strip()
        except FileNotFoundError:
            continue
        if status == CANCELED:
            return True
        if status == "successful":
            return False
    return False


def main(argv: list[str]) -> int:
    """Mark the run argv[0] as canceled if it has no status; its unit's processes are gone.

    Every run unit calls this as its ExecStopPost= command (see run_command.run_unit_argv).
    """
    if len(argv) != 1 or not RUN_IDENT.fullmatch(argv[0]):
        print("usage: python -m bridge.interrupted IDENT", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    folder = Settings().runner_dir / "artifacts" / argv[0]
    # Only this run: another run of the preview may be working now.
    if folder.is_dir() and not (folder / "status").exists() and is_dead(folder, set()):
        mark_canceled(folder)
    return 0


def preview_of(ident: str) -> str | None:
    """Return the preview id that a run ident names, or None for another shape."""
    match = IDENT.fullmatch(ident)
    return f"{match['project']}-pr{match['number']}" if match else None


def _hand_run_process(path: Path) -> tuple[int, int] | None:
    try:
        data = json.loads(path.read_text())
        return int(data["pid"]), int(data["start_time"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("cannot read %s, leaving its run alone: %s", path, error)
        return None


def _process_start_time(pid: int) -> int | None:
    """Return the start time of a process in clock ticks since boot, or None if it is gone.

    The start time distinguishes a process from a later one that reuses its PID.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 22 (proc(5)); the fields after the command name, which may contain spaces and
    # parentheses, start at field 3.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _write(path: Path, text: str, group: int) -> None:
    path.write_text(text)
    # Readable by the runner directory's group (the bridge's), like the run's other files.
    os.chown(path, -1, group)
    os.chmod(path, 0o640)


def _append_note(stdout: Path, group: int) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    note = (
        f"\npr-previews: the run ended without a status, because its process was killed; "
        f"marked {CANCELED} at {when}.\n"
    )
    exists = stdout.exists()
    with stdout.open("a") as file:
        file.write(note)
    if not exists:
        os.chown(stdout, -1, group)
        os.chmod(stdout, 0o640)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
