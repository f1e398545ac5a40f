"""Reconcile: clean up what the audit finds, through normal cleanup runs.

Each preview that the audit lists gets the cleanup run that `previews cleanup N` starts, so
the run lands in the registry and cleanup.yml removes every resource by its name. One
failed cleanup does not stop the others.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bridge import audit, interrupted
from bridge.models import PreviewRequest
from bridge.run_command import launch
from bridge.runner import new_ident
from bridge.settings import Settings

logger = logging.getLogger(__name__)

Launcher = Callable[[Settings, PreviewRequest, str], int]


def run_reconcile(settings: Settings, dry_run: bool) -> int:
    """Reconcile this host; return 0 when every cleanup succeeded, 1 otherwise."""
    audit.require_root("reconcile")
    return reconcile(settings, audit.read_layout(settings), audit.Probe(), launch, dry_run)


def reconcile(
    settings: Settings,
    layout: audit.Layout,
    probe: audit.Probe,
    launcher: Launcher,
    dry_run: bool = False,
    now: float | None = None,
) -> int:
    if dry_run:
        audit.print_report(audit.audit(settings, layout, probe, now))
        print("dry run: nothing was changed")
        return 0

    for ident in interrupted.mark_dead_runs(settings.runner_dir / "artifacts"):
        print(f"interrupted run {ident}: marked {interrupted.CANCELED}")
    report = audit.audit(settings, layout, probe, now)
    failed = [
        finding.preview_id
        for finding in report.findings
        if not _clean_up(settings, layout, probe, launcher, finding)
    ]
    removed = remove_markers(layout.gone_dir, report.expired_markers)
    if removed:
        print(f"removed {removed} gone markers older than {settings.gone_marker_days} days")

    if failed:
        print(f"{len(failed)} of {len(report.findings)} cleanups failed: {', '.join(failed)}")
        return 1
    print(f"reconciled: {len(report.findings)} previews cleaned up")
    return 0


def remove_markers(gone_dir: Path, names: list[str]) -> int:
    for name in names:
        (gone_dir / name).unlink(missing_ok=True)
    return len(names)


def _clean_up(
    settings: Settings,
    layout: audit.Layout,
    probe: audit.Probe,
    launcher: Launcher,
    finding: audit.Finding,
) -> bool:
    """Start a cleanup run of the finding's preview; return False only if it failed."""
    preview_id, reason = finding.preview_id, audit.REASONS[finding.reason]
    # Earlier cleanups took time, in which a run of this preview may have started.
    if not _still_applies(settings, layout, probe, finding):
        print(f"{preview_id}: left alone, it changed since the audit")
        return True

    request = PreviewRequest(action="cleanup", number=finding.number)
    ident = new_ident(settings, request)
    print(f"{preview_id}: {reason}; cleanup run {ident}", flush=True)
    started = time.monotonic()
    try:
        status = launcher(settings, request, ident)
    except (OSError, subprocess.SubprocessError) as error:
        logger.error("cleanup run %s of %s could not start: %s", ident, preview_id, error)
        print(f"{preview_id}: the cleanup could not start: {error}")
        return False
    seconds = time.monotonic() - started
    if status != 0:
        print(
            f"{preview_id}: cleanup failed (exit status {status}) after {seconds:.0f} s; "
            f"see 'previews logs {finding.number} --run {ident}'"
        )
        return False
    print(f"{preview_id}: cleaned up in {seconds:.0f} s")
    return True


def _still_applies(
    settings: Settings, layout: audit.Layout, probe: audit.Probe, finding: audit.Finding
) -> bool:
    report = audit.audit(settings, layout, probe)
    return any(
        (current.preview_id, current.reason) == (finding.preview_id, finding.reason)
        for current in report.findings
    )
