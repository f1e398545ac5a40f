"""A fake preview host for the audit, reconcile and interrupted-run tests."""

from __future__ import annotations

from pathlib import Path

from bridge import audit
from bridge.settings import Settings
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


class FakeProbe(audit.Probe):
    """The host's units, users, groups and refs, as a test sets them."""

    def __init__(self) -> None:
        self.units: list[tuple[str, str, str]] = []
        self.user_names: list[str] = ["root", "www-data"]
        self.group_names: list[str] = ["root", "www-data"]
        self.ref_names: list[str] = []
        self.run_units: set[str] = set()

    def loaded_units(self, project):
        return self.units

    def users(self):
        return self.user_names

    def groups(self):
        return self.group_names

    def refs(self, store):
        return self.ref_names

    def live_run_units(self):
        return self.run_units


def make_layout(root: Path) -> audit.Layout:
    """Return a layout under root with every directory that site.yml creates."""
    layout = audit.Layout(
        previews_root=root / "srv",
        state_dir=root / "state",
        units_dir=root / "units",
        vhosts_dir=root / "vhosts",
    )
    for path in (
        layout.previews_root,
        layout.units_dir,
        layout.vhosts_dir,
        layout.tokens_dir,
        layout.ports_dir,
        layout.logs_dir,
        layout.gone_dir,
    ):
        path.mkdir(parents=True)
    return layout


def plant_preview(layout: audit.Layout, probe: FakeProbe, preview_id: str) -> None:
    """Create every resource a deployed preview has."""
    for service in ("web", "api"):
        (layout.units_dir / f"{preview_id}-{service}.service").write_text("[Service]\n")
        probe.units.append((f"{preview_id}-{service}.service", "loaded", "active"))
    (layout.vhosts_dir / f"{preview_id}.conf").write_text("server {}\n")
    (layout.previews_root / preview_id / "data").mkdir(parents=True)
    (layout.tokens_dir / preview_id).write_text("token\n")
    (layout.ports_dir / f"{preview_id}.json").write_text('{"web": 40000}\n')
    (layout.logs_dir / preview_id).mkdir()
    probe.user_names.append(preview_id)
    probe.group_names.append(preview_id)
    number = preview_id.rsplit("-pr", 1)[1]
    probe.ref_names.append(f"refs/pull/{number}/head")


def register(
    settings: Settings,
    number: int,
    action: str = "deploy",
    status: str | None = "successful",
    day: int = 1,
) -> str:
    """Write a finished run of PR number on day of January 2026; return its ident."""
    ident = f"202601{day:02d}T000000000000Z_demo-pr{number}_{action}_{day:06x}"
    time = f"2026-01-{day:02d}T00:00:00.000000Z"
    write_run(settings.runner_dir, ident, status, facts(action, number=number, time=time))
    return ident


def runner_run(root: Path, ident: str, status: str | None = None, **fact_values) -> Path:
    """Write a run of `previews run`: ansible-runner's command file marks it as one."""
    write_run(root, ident, status, facts("deploy", **fact_values))
    folder = root / "artifacts" / ident
    (folder / "command").write_text("{}")
    (folder / "stdout").write_text("TASK [Build the release]\n")
    return folder
