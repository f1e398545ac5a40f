"""The staleness rule: last activity, pins, and the requests that the bridge holds."""

from datetime import UTC, datetime, timedelta

import pytest

from bridge import pins, stale
from bridge.intake import Accepted, Blocked, Intake
from bridge.models import PreviewRequest
from bridge.registry import Preview
from bridge.settings import Settings
from tests.unit.fakes import write_run

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SHA = "a" * 40


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).strftime(stale.TIME_FORMAT)


def preview(number: int, updated: str, last_time: str | None = None, status="active") -> Preview:
    return Preview(
        id=f"demo-pr{number}",
        number=number,
        sha=SHA,
        ref="feature",
        author="octocat",
        created=ago(30),
        updated=updated,
        status=status,
        last_time=last_time or updated,
    )


def numbers(found: list[stale.StalePreview]) -> list[int]:
    return [entry.number for entry in found]


def test_untouched_preview_is_stale():
    found = stale.select_stale([preview(1, ago(8))], {}, set(), NOW, 7)

    assert numbers(found) == [1]
    assert found[0].last_activity == ago(8)


def test_daily_updates_keep_an_old_preview():
    # Created 30 days ago, deployed again yesterday: the creation time does not count.
    assert stale.select_stale([preview(1, ago(1))], {}, set(), NOW, 7) == []


def test_failed_deploy_counts_as_activity():
    failed = preview(1, updated=ago(20), last_time=ago(2), status="failed")

    assert stale.select_stale([failed], {}, set(), NOW, 7) == []


def test_blocked_request_counts_as_activity():
    old = preview(1, ago(20))

    assert stale.select_stale([old], {1: ago(3)}, set(), NOW, 7) == []
    assert numbers(stale.select_stale([old], {2: ago(3)}, set(), NOW, 7)) == [1]


def test_pinned_preview_is_never_stale():
    previews = [preview(1, ago(100)), preview(2, ago(100))]

    assert numbers(stale.select_stale(previews, {}, {"demo-pr1"}, NOW, 7)) == [2]


@pytest.mark.parametrize(
    ("days_ago", "is_stale"),
    [(6.99, False), (7.0, False), (7.01, True)],
)
def test_age_limit_boundary(days_ago, is_stale):
    found = stale.select_stale([preview(1, ago(days_ago))], {}, set(), NOW, 7)

    assert bool(found) is is_stale


def test_preview_without_time_is_kept():
    unknown = preview(1, updated="", last_time="")

    assert stale.select_stale([unknown], {}, set(), NOW, 7) == []


def test_request_times_take_the_latest(tmp_path):
    intake = Intake(tmp_path)
    intake.prepare()
    deploy = PreviewRequest(action="deploy", number=4, sha=SHA)
    intake.block(Blocked(deploy, "from a fork", "2026-03-01T00:00:00.000000Z"))
    intake.put(Accepted(deploy, "ident", "2026-03-05T00:00:00.000000Z"))
    intake.block(Blocked(deploy.model_copy(update={"number": 5}), "fork", "2026-03-02T00:00:00Z"))

    times = stale.request_times(intake)

    assert times == {4: "2026-03-05T00:00:00.000000Z", 5: "2026-03-02T00:00:00Z"}


def test_find_stale_reads_registry_pins_and_intake(tmp_path):
    settings = Settings(project="demo", data_dir=tmp_path)
    old = (datetime.now(UTC) - timedelta(days=9)).strftime(stale.TIME_FORMAT)
    for number, project in [(1, "demo"), (2, "demo"), (3, "demo"), (4, "other")]:
        facts = {"id": f"{project}-pr{number}", "number": number, "action": "deploy"}
        facts |= {"sha": SHA, "time": old}
        write_run(
            settings.runner_dir,
            f"20260101T000000Z_{project}-pr{number}_deploy_a",
            "successful",
            facts,
        )
    pins.pin(settings.pins_dir, "demo-pr2")
    intake = Intake(settings.state_dir)
    intake.prepare()
    request = PreviewRequest(action="deploy", number=3, sha=SHA)
    intake.block(Blocked(request, "from a fork", datetime.now(UTC).strftime(stale.TIME_FORMAT)))

    found = stale.find_stale(settings, 7)

    assert numbers(found) == [1]
