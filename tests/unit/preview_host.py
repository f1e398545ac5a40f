"""Runs and resources of a fake preview host, for the tests that inspect runs."""

from __future__ import annotations

from pathlib import Path

from tests.unit.fakes import write_run


def facts(action: str, number: int = 1, time: str = "2026-01-01T00:00:00Z", **extra) -> dict:
    return {
        "id": f"demo-pr{number}",
        "number": number,
        "action": action,
        "sha": "1" * 40,
        "ref": "feature",
        "author": "octocat",
        "time": time,
        **extra,
    }


def runner_run(root: Path, ident: str, status: str | None = None, **fact_values) -> Path:
    """Write a run of `previews run`: ansible-runner's command file marks it as one."""
    write_run(root, ident, status, facts("deploy", **fact_values))
    folder = root / "artifacts" / ident
    (folder / "command").write_text("{}")
    (folder / "stdout").write_text("TASK [Build the release]\n")
    return folder
