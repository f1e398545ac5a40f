"""The CLI's stale cleanup, pins and listing, against a registry in a temporary directory."""

import os
from datetime import UTC, datetime, timedelta

import pytest

from bridge import cli, pins
from bridge.stale import TIME_FORMAT
from tests.unit.fakes import write_run

SHA = "c" * 40


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PREVIEWS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PREVIEWS_PROJECT", "demo")
    return tmp_path


def deployed(data_dir, number, days_ago, **facts):
    time = (datetime.now(UTC) - timedelta(days=days_ago)).strftime(TIME_FORMAT)
    preview = {"id": f"demo-pr{number}", "number": number, "action": "deploy", "sha": SHA}
    ident = f"20260101T000000000000Z_demo-pr{number}_deploy_{number:06x}"
    write_run(
        data_dir / "runner",
        ident,
        facts.pop("status", "successful"),
        preview | facts | {"time": time},
    )


def test_cleanup_stale_dry_run_lists_the_stale(data_dir, capsys):
    deployed(data_dir, 1, days_ago=8)
    deployed(data_dir, 2, days_ago=1)
    deployed(data_dir, 3, days_ago=30)
    pins.pin(data_dir / "pins", "demo-pr3")

    status = cli.main(["cleanup-stale", "--max-age-days", "7", "--dry-run"])

    output = capsys.readouterr().out
    assert status == 0
    assert "PR 1: last activity" in output
    assert "PR 2" not in output
    assert "PR 3" not in output


def test_cleanup_stale_starts_one_run(data_dir, monkeypatch, capsys):
    if os.geteuid() != 0:
        pytest.skip("cleanup-stale starts its run as root")
    deployed(data_dir, 1, days_ago=8)
    deployed(data_dir, 4, days_ago=9)
    calls = []
    monkeypatch.setattr(cli, "launch_stale", lambda *args: calls.append(args[1:]) or 0)

    status = cli.main(["cleanup-stale"])

    assert status == 0
    [(ident, days, numbers)] = calls
    assert "_demo_cleanup-stale_" in ident
    assert (days, numbers) == (7, [1, 4])
    assert f"run {ident}: successful" in capsys.readouterr().out


def test_cleanup_stale_without_stale_starts_nothing(data_dir, monkeypatch, capsys):
    deployed(data_dir, 1, days_ago=2)
    monkeypatch.setattr(cli, "launch_stale", lambda *args: pytest.fail("no run expected"))

    assert cli.main(["cleanup-stale"]) == 0
    assert "no unpinned preview has been inactive for 7 days" in capsys.readouterr().out


@pytest.mark.parametrize("days", ["0", "3651"])
def test_cleanup_stale_rejects_max_age(data_dir, days, capsys):
    assert cli.main(["cleanup-stale", "--max-age-days", days, "--dry-run"]) == cli.EXIT_USAGE
    assert "--max-age-days must be 1 to 3650" in capsys.readouterr().err


def test_list_shows_pins_and_reasons(data_dir, capsys):
    if os.geteuid() != 0:
        pytest.skip("pin needs root")
    deployed(data_dir, 5, days_ago=1)
    deployed(data_dir, 6, days_ago=1, status="failed", reason="The host has no capacity")

    assert cli.main(["pin", "5"]) == 0
    assert cli.main(["list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "demo-pr5 is now pinned"
    assert "PINNED" in lines[1]
    assert lines[2].split()[:3] == ["5", "active", "yes"]
    assert lines[3].split()[:2] == ["6", "failed"]
    assert lines[3].endswith("failed: The host has no capacity")


def test_unpin(data_dir, capsys):
    if os.geteuid() != 0:
        pytest.skip("unpin needs root")
    pins.pin(data_dir / "pins", "demo-pr5")

    assert cli.main(["unpin", "5"]) == 0
    assert cli.main(["unpin", "5"]) == 0

    assert capsys.readouterr().out.splitlines() == [
        "demo-pr5 is no longer pinned",
        "demo-pr5 was not pinned",
    ]
    assert pins.pinned(data_dir / "pins") == frozenset()
