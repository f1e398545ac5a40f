"""Runs that died midway: which are dead, how they are marked, and what the registry shows."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from bridge import interrupted, registry
from tests.unit.fakes import write_run
from tests.unit.preview_host import facts, runner_run

FIRST = "20260101T000000000000Z_demo-pr1_deploy_000001"
SECOND = "20260102T000000000000Z_demo-pr1_deploy_000002"
OTHER = "20260102T000000000000Z_demo-pr12_deploy_000003"


def hand_run(root: Path, ident: str, pid: int, start_time: int | None) -> Path:
    write_run(root, ident, None, facts("deploy"))
    folder = root / "artifacts" / ident
    process = {"pid": pid, "start_time": start_time}
    (folder / "process.json").write_text(json.dumps(process))
    return folder


def start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def test_unfinished_runs_of_one_preview(tmp_path):
    runner_run(tmp_path, FIRST, "successful")
    runner_run(tmp_path, SECOND)
    runner_run(tmp_path, OTHER)

    found = interrupted.unfinished_runs(tmp_path / "artifacts", "demo-pr1")

    assert [folder.name for folder in found] == [SECOND]
    assert len(interrupted.unfinished_runs(tmp_path / "artifacts")) == 2
    assert interrupted.unfinished_runs(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("live_units", "dead"),
    [(set(), True), ({SECOND}, False), ({FIRST}, True)],
)
def test_runner_run_is_dead_without_its_unit(tmp_path, live_units, dead):
    folder = runner_run(tmp_path, SECOND)

    assert interrupted.is_dead(folder, live_units) is dead


def test_hand_run_dead_without_process(tmp_path):
    alive = hand_run(tmp_path, FIRST, os.getpid(), start_time(os.getpid()))
    reused = hand_run(tmp_path, SECOND, os.getpid(), start_time(os.getpid()) - 1)
    child = subprocess.Popen(["true"])
    child_start = start_time(child.pid)
    child.wait()
    gone = hand_run(tmp_path, OTHER, child.pid, child_start)

    assert not interrupted.is_dead(alive, set())
    assert interrupted.is_dead(reused, set())
    assert interrupted.is_dead(gone, set())


def test_run_of_unknown_kind_is_left_alone(tmp_path):
    write_run(tmp_path, FIRST, None, facts("deploy"))

    assert not interrupted.is_dead(tmp_path / "artifacts" / FIRST, set())


def test_mark_canceled_writes_what_runner_writes(tmp_path):
    folder = runner_run(tmp_path, FIRST)

    assert interrupted.mark_canceled(folder)

    assert (folder / "status").read_text() == "canceled"
    assert (folder / "rc").read_text() == "254"
    assert "marked canceled" in (folder / "stdout").read_text()
    assert (folder / "status").stat().st_mode & 0o777 == 0o640
    assert not list(folder.glob(".*"))


def test_mark_canceled_never_replaces_a_status(tmp_path):
    folder = runner_run(tmp_path, FIRST)
    (folder / "status").write_text("successful")

    assert not interrupted.mark_canceled(folder)

    assert (folder / "status").read_text() == "successful"
    assert not list(folder.glob(".*"))


def test_mark_earlier_runs_under_the_lock_skips_systemd(tmp_path, monkeypatch):
    runner_run(tmp_path, FIRST)
    runner_run(tmp_path, OTHER)
    monkeypatch.setattr(interrupted, "active_run_units", lambda: {FIRST, OTHER})

    interrupted.mark_earlier_runs(tmp_path / "artifacts", "demo-pr1")

    assert (tmp_path / "artifacts" / FIRST / "status").read_text() == "canceled"
    assert not (tmp_path / "artifacts" / OTHER / "status").exists()


def test_mark_dead_runs_asks_systemd(tmp_path, monkeypatch):
    runner_run(tmp_path, FIRST)
    runner_run(tmp_path, OTHER)
    monkeypatch.setattr(interrupted, "active_run_units", lambda: {OTHER})

    assert interrupted.mark_dead_runs(tmp_path / "artifacts") == [FIRST]


def test_mark_earlier_runs_logs_what_it_cannot_write(tmp_path, monkeypatch, caplog):
    runner_run(tmp_path, FIRST)

    def read_only(folder):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(interrupted, "mark_canceled", read_only)

    interrupted.mark_earlier_runs(tmp_path / "artifacts", "demo-pr1")

    assert "Read-only file system" in caplog.text


def test_stop_post_command_marks_its_own_run_only(tmp_path, monkeypatch):
    monkeypatch.setenv("PREVIEWS_DATA_DIR", str(tmp_path))
    runner_run(tmp_path / "runner", FIRST)
    runner_run(tmp_path / "runner", SECOND)

    assert interrupted.main([FIRST]) == 0

    assert (tmp_path / "runner" / "artifacts" / FIRST / "status").read_text() == "canceled"
    assert not (tmp_path / "runner" / "artifacts" / SECOND / "status").exists()
    assert interrupted.main(["../../etc"]) == 2


def test_stop_post_command_marks_a_stale_cleanup(tmp_path, monkeypatch):
    monkeypatch.setenv("PREVIEWS_DATA_DIR", str(tmp_path))
    ident = "20260101T000000000000Z_demo_cleanup-stale_abcdef"
    runner_run(tmp_path / "runner", ident)

    assert interrupted.main([ident]) == 0

    assert (tmp_path / "runner" / "artifacts" / ident / "status").read_text() == "canceled"


def test_preview_of_ident():
    assert interrupted.preview_of(FIRST) == "demo-pr1"
    assert interrupted.preview_of("not-an-ident") is None


@pytest.mark.parametrize("writable", [True, False], ids=["root", "bridge"])
def test_registry_shows_a_marked_run_as_failed(tmp_path, monkeypatch, writable):
    runner_run(tmp_path, FIRST, "successful", time="2026-01-01T00:00:00.000000Z")
    runner_run(tmp_path, SECOND, sha="2" * 40, time="2026-01-02T00:00:00.000000Z")
    # Both caches are written while the second run still looks alive.
    [before] = registry.list_previews(tmp_path)
    assert before.status == "deploying"
    monkeypatch.setattr(registry, "_writable", lambda runner_dir: writable)

    interrupted.mark_canceled(tmp_path / "artifacts" / SECOND)

    [after] = registry.list_previews(tmp_path)
    assert after.status == "failed"
    assert after.sha == "1" * 40
    assert after.last_run == SECOND
    indexed = json.loads((tmp_path / "index.json").read_text())["runs"]
    assert (SECOND in indexed) is writable


def test_registry_after_an_interrupted_first_deploy(tmp_path):
    runner_run(tmp_path, FIRST)
    [before] = registry.list_previews(tmp_path)
    assert before.status == "deploying"

    interrupted.mark_canceled(tmp_path / "artifacts" / FIRST)

    [after] = registry.list_previews(tmp_path)
    assert (after.status, after.sha) == ("failed", "")
    [run] = registry.history(registry.read_runs(tmp_path), "demo-pr1")
    assert run.status == "canceled"


def test_interrupted_cleanup_keeps_the_preview(tmp_path):
    runner_run(tmp_path, FIRST, "successful", time="2026-01-01T00:00:00.000000Z")
    cleanup = "20260102T000000000000Z_demo-pr1_cleanup_000002"
    write_run(tmp_path, cleanup, None, facts("cleanup", time="2026-01-02T00:00:00.000000Z"))
    (tmp_path / "artifacts" / cleanup / "command").write_text("{}")

    interrupted.mark_canceled(tmp_path / "artifacts" / cleanup)

    [preview] = registry.list_previews(tmp_path)
    assert preview.status == "active"


THIRD = "20260103T000000000000Z_demo-pr1_deploy_000004"
NOW = "20260104T000000000000Z_demo-pr1_deploy_000005"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], False),
        (["successful"], False),
        (["canceled"], True),
        (["canceled", "failed"], True),
        (["canceled", "successful"], False),
        (["successful", "canceled", "failed"], True),
    ],
    ids=["none", "success", "canceled", "failed-after", "success-after", "success-before"],
)
def test_interrupted_since_success(tmp_path, statuses, expected):
    for ident, status in zip([FIRST, SECOND, THIRD], statuses, strict=False):
        runner_run(tmp_path, ident, status)
    runner_run(tmp_path, OTHER, "canceled")
    runner_run(tmp_path, NOW)

    found = interrupted.interrupted_since_success(tmp_path / "artifacts", "demo-pr1", NOW)

    assert found is expected
