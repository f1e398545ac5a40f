"""Reconcile: one cleanup run per finding, dead runs marked, old gone markers pruned."""

import os
import time

import pytest

from bridge import reconcile
from bridge.settings import Settings
from tests.unit.fakes import Launcher
from tests.unit.preview_host import FakeProbe, make_layout, plant_preview, register, runner_run


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def layout(tmp_path):
    return make_layout(tmp_path)


@pytest.fixture
def probe():
    return FakeProbe()


class RemovingLauncher(Launcher):
    """Cleans up like cleanup.yml would: the preview's resources go, except for PRs in fail."""

    def __init__(self, layout, probe, fail=frozenset()):
        super().__init__()
        self.layout, self.probe, self.fail = layout, probe, fail

    def __call__(self, settings, request, ident):
        super().__call__(settings, request, ident)
        if request.number in self.fail:
            return 1
        preview_id = settings.preview_id(request.number)
        (self.layout.ports_dir / f"{preview_id}.json").unlink(missing_ok=True)
        self.probe.units = [unit for unit in self.probe.units if not unit[0].startswith(preview_id)]
        return 0


def test_every_finding_gets_a_cleanup_run(settings, layout, probe, capsys):
    (layout.ports_dir / "demo-pr21.json").write_text("{}")
    (layout.ports_dir / "demo-pr22.json").write_text("{}")
    register(settings, 23)
    launcher = RemovingLauncher(layout, probe)

    status = reconcile.reconcile(settings, layout, probe, launcher)

    assert status == 0
    assert [(call.number, call.action) for call in launcher.calls] == [
        (21, "cleanup"),
        (22, "cleanup"),
        (23, "cleanup"),
    ]
    assert "_demo-pr21_cleanup_" in launcher.calls[0].ident
    assert "3 previews cleaned up" in capsys.readouterr().out


def test_one_failed_cleanup_blocks_no_other(settings, layout, probe, capsys):
    for number in (31, 32, 33):
        (layout.ports_dir / f"demo-pr{number}.json").write_text("{}")
    launcher = RemovingLauncher(layout, probe, fail={31})

    status = reconcile.reconcile(settings, layout, probe, launcher)

    assert status == 1
    assert [call.number for call in launcher.calls] == [31, 32, 33]
    output = capsys.readouterr().out
    assert "1 of 3 cleanups failed: demo-pr31" in output
    assert "previews logs 31 --run" in output


def test_launch_error_is_a_failed_cleanup(settings, layout, probe, capsys):
    (layout.ports_dir / "demo-pr34.json").write_text("{}")
    (layout.ports_dir / "demo-pr35.json").write_text("{}")
    calls = []

    def launcher(settings, request, ident):
        calls.append(request.number)
        if request.number == 34:
            raise FileNotFoundError("previews")
        return 0

    assert reconcile.reconcile(settings, layout, probe, launcher) == 1
    assert calls == [34, 35]
    assert "could not start" in capsys.readouterr().out


def test_preview_that_changed_meanwhile_is_left_alone(settings, layout, probe, capsys):
    (layout.ports_dir / "demo-pr41.json").write_text("{}")
    (layout.ports_dir / "demo-pr42.json").write_text("{}")

    def launcher(settings, request, ident):
        # A deploy of PR 42 starts while PR 41 is being cleaned up.
        register(settings, 42)
        return 0

    assert reconcile.reconcile(settings, layout, probe, launcher) == 0
    assert "demo-pr42: left alone, it changed since the audit" in capsys.readouterr().out


def test_dead_runs_are_marked_first(settings, layout, probe, monkeypatch):
    plant_preview(layout, probe, "demo-pr43")
    folder = runner_run(
        settings.runner_dir, "20260101T000000000000Z_demo-pr43_deploy_000001", number=43
    )
    monkeypatch.setattr("bridge.interrupted.active_run_units", lambda: set())
    launcher = RemovingLauncher(layout, probe)

    assert reconcile.reconcile(settings, layout, probe, launcher) == 0

    assert (folder / "status").read_text() == "canceled"
    assert launcher.calls == []


def test_old_markers_are_pruned(settings, layout, probe):
    old, new = layout.gone_dir / "pr-1.previews.test", layout.gone_dir / "pr-2.previews.test"
    for marker in (old, new):
        marker.write_text("x\n")
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))

    assert reconcile.reconcile(settings, layout, probe, Launcher()) == 0

    assert not old.exists()
    assert new.exists()


def test_dry_run_changes_nothing(settings, layout, probe, monkeypatch, capsys):
    (layout.ports_dir / "demo-pr44.json").write_text("{}")
    folder = runner_run(
        settings.runner_dir, "20260101T000000000000Z_demo-pr45_deploy_000001", number=45
    )
    monkeypatch.setattr("bridge.interrupted.active_run_units", lambda: set())
    launcher = Launcher()

    assert reconcile.reconcile(settings, layout, probe, launcher, dry_run=True) == 0

    assert launcher.calls == []
    assert not (folder / "status").exists()
    output = capsys.readouterr().out
    assert "demo-pr44" in output
    assert "dry run" in output


def test_reconcile_needs_root(settings, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    with pytest.raises(RuntimeError, match="must run as root"):
        reconcile.run_reconcile(settings, dry_run=False)
