import json
import shutil

import pytest

from bridge import registry
from tests.unit.fakes import write_run

SHA1 = "1" * 40
SHA2 = "2" * 40


def facts(action, number=1, sha=SHA1, time="2026-01-01T00:00:00Z", **extra):
    return {
        "id": f"demo-pr{number}",
        "number": number,
        "action": action,
        "sha": sha,
        "ref": "feature",
        "author": "octocat",
        "time": time,
        **extra,
    }


def test_fold_deploy_then_update(tmp_path):
    write_run(
        tmp_path,
        "20260101T000000Z_demo-pr1_deploy_a",
        "successful",
        facts("deploy", urls={"web": "https://pr-1.x/"}),
    )
    write_run(
        tmp_path,
        "20260102T000000Z_demo-pr1_deploy_b",
        "successful",
        facts("deploy", sha=SHA2, time="2026-01-02T00:00:00Z"),
    )

    [preview] = registry.list_previews(tmp_path)

    assert preview.sha == SHA2
    assert preview.created == "2026-01-01T00:00:00Z"
    assert preview.updated == "2026-01-02T00:00:00Z"
    assert preview.status == "active"


def test_fold_failed_update_keeps_served_sha(tmp_path):
    write_run(tmp_path, "20260101T000000Z_demo-pr1_deploy_a", "successful", facts("deploy"))
    write_run(tmp_path, "20260102T000000Z_demo-pr1_deploy_b", "failed", facts("deploy", sha=SHA2))

    [preview] = registry.list_previews(tmp_path)

    assert preview.sha == SHA1
    assert preview.status == "failed"


def test_fold_first_deploy_failed(tmp_path):
    write_run(tmp_path, "20260101T000000Z_demo-pr1_deploy_a", "failed", facts("deploy"))

    [preview] = registry.list_previews(tmp_path)

    assert preview.status == "failed"
    assert preview.sha == ""


def test_fold_running_deploy(tmp_path):
    write_run(tmp_path, "20260101T000000Z_demo-pr1_deploy_a", None, facts("deploy"))

    [preview] = registry.list_previews(tmp_path)

    assert preview.status == "deploying"


def test_fold_cleanup_removes(tmp_path):
    write_run(tmp_path, "20260101T000000Z_demo-pr1_deploy_a", "successful", facts("deploy"))
    write_run(
        tmp_path, "20260101T000000Z_demo-pr2_deploy_a", "successful", facts("deploy", number=2)
    )
    write_run(tmp_path, "20260102T000000Z_demo-pr1_cleanup_b", "successful", facts("cleanup"))

    previews = registry.list_previews(tmp_path)

    assert [preview.number for preview in previews] == [2]


def test_fold_failed_cleanup_keeps(tmp_path):
    write_run(tmp_path, "20260101T000000Z_demo-pr1_deploy_a", "successful", facts("deploy"))
    write_run(tmp_path, "20260102T000000Z_demo-pr1_cleanup_b", "failed", facts("cleanup"))

    assert [preview.number for preview in registry.list_previews(tmp_path)] == [1]


def test_runs_without_facts_are_skipped(tmp_path):
    (tmp_path / "artifacts" / "20260101T000000Z_demo-pr1_deploy_a").mkdir(parents=True)
    write_run(
        tmp_path, "20260102T000000Z_demo-pr2_deploy_a", "successful", facts("deploy", number=2)
    )

    assert [preview.number for preview in registry.list_previews(tmp_path)] == [2]


def test_empty_data_dir(tmp_path):
    assert registry.list_previews(tmp_path / "missing") == []


def test_killed_run_with_rc_none(tmp_path):
    write_run(tmp_path, "20260101T000000Z_demo-pr1_deploy_a", "failed", facts("deploy"))
    (tmp_path / "artifacts" / "20260101T000000Z_demo-pr1_deploy_a" / "rc").write_text("None")

    [preview] = registry.list_previews(tmp_path)

    assert preview.status == "failed"


def test_failed_attempts_update_unserved_preview(tmp_path):
    write_run(tmp_path, "20260101T000000Z_demo-pr1_deploy_a", "failed", facts("deploy"))
    write_run(
        tmp_path,
        "20260102T000000Z_demo-pr1_deploy_b",
        "failed",
        facts("deploy", time="2026-01-02T00:00:00Z", ref="second"),
    )

    [preview] = registry.list_previews(tmp_path)

    assert preview.ref == "second"
    assert preview.created == "2026-01-01T00:00:00Z"
    assert preview.updated == "2026-01-02T00:00:00Z"


def deploys(root, number, count, start_day=1, status: str | None = "successful"):
    """Write count deploy runs of PR number, one a day; return their idents."""
    idents = []
    for day in range(start_day, start_day + count):
        ident = f"202601{day:02d}T000000000000Z_demo-pr{number}_deploy_{day:06x}"
        time = f"2026-01-{day:02d}T00:00:00.000000Z"
        write_run(root, ident, status, facts("deploy", number=number, time=time))
        idents.append(ident)
    return idents


def test_index_is_written_and_used(tmp_path):
    deploys(tmp_path, 1, 3)

    first = registry.list_previews(tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())

    assert len(index["runs"]) == 3
    # A run whose folder lost its events still comes from the index.
    for path in (tmp_path / "artifacts").glob("*/job_events/*"):
        path.unlink()
    assert registry.list_previews(tmp_path) == first


@pytest.mark.parametrize("damage", ["{not json", '{"version": 99, "runs": {}}', '{"runs": 5}', ""])
@pytest.mark.parametrize("cache", [["index.json"], ["fold.json"], ["index.json", "fold.json"]])
def test_damaged_cache_is_rebuilt_from_the_artifacts(tmp_path, damage, cache):
    deploys(tmp_path, 1, 2)
    deploys(tmp_path, 2, 1)
    expected = registry.list_previews(tmp_path)

    for name in cache:
        (tmp_path / name).write_text(damage)

    assert registry.list_previews(tmp_path) == expected
    registry.refresh(tmp_path)
    assert len(json.loads((tmp_path / "index.json").read_text())["runs"]) == 3
    assert len(json.loads((tmp_path / "fold.json").read_text())["idents"]) == 3


@pytest.mark.parametrize("cache", ["index.json", "fold.json"])
def test_deleted_cache_loses_nothing(tmp_path, cache):
    deploys(tmp_path, 1, 2)
    expected = registry.list_previews(tmp_path)

    (tmp_path / cache).unlink()

    assert registry.list_previews(tmp_path) == expected


def test_runs_after_the_cached_fold_are_folded_on_top(tmp_path):
    deploys(tmp_path, 1, 2)
    registry.list_previews(tmp_path)

    [later] = deploys(tmp_path, 1, 1, start_day=5, status=None)
    write_run(
        tmp_path,
        "20260106T000000000000Z_demo-pr2_deploy_000006",
        "successful",
        facts("deploy", number=2, time="2026-01-06T00:00:00.000000Z"),
    )

    first, second = registry.list_previews(tmp_path)
    assert (first.status, first.last_run) == ("deploying", later)
    assert second.number == 2


def test_an_older_run_refolds_everything(tmp_path):
    deploys(tmp_path, 1, 1, start_day=5)
    registry.list_previews(tmp_path)

    write_run(
        tmp_path,
        "20260101T000000000000Z_demo-pr1_cleanup_000001",
        "successful",
        facts("cleanup", time="2026-01-01T00:00:00.000000Z"),
    )
    write_run(
        tmp_path,
        "20260103T000000000000Z_demo-pr1_deploy_000003",
        "successful",
        facts("deploy", time="2026-01-03T00:00:00.000000Z"),
    )

    [preview] = registry.list_previews(tmp_path)
    assert preview.created == "2026-01-03T00:00:00.000000Z"
    assert preview.updated == "2026-01-05T00:00:00.000000Z"


def test_run_removed_from_artifacts_leaves_the_index(tmp_path):
    [only] = deploys(tmp_path, 1, 1)
    registry.list_previews(tmp_path)

    shutil.rmtree(tmp_path / "artifacts" / only)

    assert registry.list_previews(tmp_path) == []
    assert json.loads((tmp_path / "index.json").read_text())["runs"] == {}


def test_running_run_is_not_indexed(tmp_path):
    write_run(tmp_path, "20260101T000000000000Z_demo-pr1_deploy_000001", None, facts("deploy"))

    [preview] = registry.list_previews(tmp_path)

    assert preview.status == "deploying"
    assert not (tmp_path / "index.json").exists()


def test_rotate_keeps_active_previews_and_the_last_runs_of_others(tmp_path):
    requests = tmp_path / "requests"
    requests.mkdir()
    active = deploys(tmp_path, 1, 5)
    gone = deploys(tmp_path, 2, 5)
    cleanup = "20260110T000000000000Z_demo-pr2_cleanup_00000a"
    write_run(
        tmp_path, cleanup, "successful", facts("cleanup", number=2, time="2026-01-10T00:00:00Z")
    )
    for ident in gone:
        (requests / f"{ident}.yml").write_text("preview_pr: 2\n")

    removed = registry.rotate(tmp_path, requests, keep=2)

    assert sorted(removed) == sorted(gone[:4])
    left = {run.ident for run in registry.read_runs(tmp_path)}
    assert left == {*active, gone[4], cleanup}
    assert sorted(path.stem for path in requests.iterdir()) == [gone[4]]
    assert set(json.loads((tmp_path / "index.json").read_text())["runs"]) == left


STALE = "20260120T000000000000Z_demo_cleanup-stale_0000ff"


def write_stale_run(root, ident, status, targets, removed, time="2026-01-20T00:00:00Z"):
    """Write a stale cleanup run like cleanup-stale.yml records it."""
    preview = {
        "id": "",
        "project": "demo",
        "action": "cleanup-stale",
        "ids": [f"demo-pr{number}" for number in targets],
        "time": time,
    }
    folder = root / "artifacts" / ident
    (folder / "job_events").mkdir(parents=True)
    if status is None:
        events = [{"preview": preview}] + [
            {"previews_removed": [f"demo-pr{number}"]} for number in removed
        ]
        for counter, data in enumerate(events, start=1):
            event = {
                "event": "runner_on_ok",
                "event_data": {
                    "task_action": "ansible.builtin.set_stats",
                    "res": {"ansible_stats": {"data": data}},
                },
            }
            (folder / "job_events" / f"{counter}-event.json").write_text(json.dumps(event))
        return
    (folder / "status").write_text(status)
    stats = {"preview": preview, "previews_removed": [f"demo-pr{n}" for n in removed]}
    event = {"event": "playbook_on_stats", "event_data": {"artifact_data": stats}}
    (folder / "job_events" / "99-stats.json").write_text(json.dumps(event))


def test_stale_cleanup_drops_the_removed_previews(tmp_path):
    for number in (1, 2, 3):
        deploys(tmp_path, number, 1)
    write_stale_run(tmp_path, STALE, "successful", [1, 2], removed=[1, 2])

    assert [preview.number for preview in registry.list_previews(tmp_path)] == [3]


def test_failed_stale_cleanup_drops_only_what_it_removed(tmp_path):
    for number in (1, 2):
        deploys(tmp_path, number, 1)
    write_stale_run(tmp_path, STALE, "failed", [1, 2], removed=[2])

    assert [preview.number for preview in registry.list_previews(tmp_path)] == [1]


def test_running_stale_cleanup_drops_each_removal_so_far(tmp_path):
    for number in (1, 2, 3):
        deploys(tmp_path, number, 1)
    write_stale_run(tmp_path, STALE, None, [1, 2, 3], removed=[1, 3])

    assert [preview.number for preview in registry.list_previews(tmp_path)] == [2]


def test_deploy_after_a_stale_cleanup_is_active_again(tmp_path):
    deploys(tmp_path, 1, 1)
    write_stale_run(tmp_path, STALE, "successful", [1], removed=[1])
    deploys(tmp_path, 1, 1, start_day=25)

    [preview] = registry.list_previews(tmp_path)

    assert preview.updated == "2026-01-25T00:00:00.000000Z"


def test_history_includes_stale_cleanups(tmp_path):
    deploys(tmp_path, 1, 1)
    deploys(tmp_path, 2, 1)
    write_stale_run(tmp_path, STALE, "successful", [1], removed=[1])

    runs = registry.read_runs(tmp_path)

    assert [run.action for run in registry.history(runs, "demo-pr1")] == [
        "deploy",
        "cleanup-stale",
    ]
    assert [run.action for run in registry.history(runs, "demo-pr2")] == ["deploy"]


def test_rotate_keeps_removing_stale_cleanup(tmp_path):
    requests = tmp_path / "requests"
    requests.mkdir()
    gone = deploys(tmp_path, 1, 5)
    write_stale_run(tmp_path, STALE, "successful", [1], removed=[1])
    # Many later stale cleanups of other previews must not push it out.
    later = []
    for day in range(21, 26):
        ident = f"202601{day}T000000000000Z_demo_cleanup-stale_0000{day}"
        write_stale_run(
            tmp_path, ident, "successful", [9], removed=[9], time=f"2026-01-{day}T00:00Z"
        )
        later.append(ident)

    registry.rotate(tmp_path, requests, keep=2)

    left = {run.ident for run in registry.read_runs(tmp_path)}
    assert left == {gone[4], STALE, *later[-2:]}
    assert registry.list_previews(tmp_path) == []


def test_failed_deploy_records_the_reason(tmp_path):
    deploys(tmp_path, 1, 1)
    write_run(
        tmp_path,
        "20260105T000000Z_demo-pr1_deploy_b",
        "failed",
        facts("deploy", time="2026-01-05T00:00:00Z", reason="The host has no capacity"),
    )

    [preview] = registry.list_previews(tmp_path)

    assert (preview.status, preview.reason) == ("failed", "The host has no capacity")


def test_successful_deploy_clears_the_reason(tmp_path):
    write_run(tmp_path, "20260101T000000Z_demo-pr1_deploy_a", "failed", facts("deploy", reason="x"))
    deploys(tmp_path, 1, 1, start_day=2)

    [preview] = registry.list_previews(tmp_path)

    assert preview.reason == ""


def test_overview_marks_pinned_previews(tmp_path):
    deploys(tmp_path, 1, 1)
    deploys(tmp_path, 2, 1)

    previews = registry.overview(tmp_path, [], lambda n: f"demo-pr{n}", {"demo-pr2"})

    assert [(preview.number, preview.pinned) for preview in previews] == [(1, False), (2, True)]
    cached = json.loads((tmp_path / "fold.json").read_text())["previews"]
    assert cached["demo-pr2"]["pinned"] is False


def write_deploy_and_rollback(tmp_path, rollback_status):
    write_run(
        tmp_path,
        "20260101T000000Z_demo-pr1_deploy_a",
        "successful",
        facts("deploy", urls={"web": "https://pr-1.x/"}, ports={"web": 40000}),
    )
    write_run(
        tmp_path,
        "20260102T000000Z_demo-pr1_deploy_b",
        "successful",
        facts("deploy", sha=SHA2, time="2026-01-02T00:00:00Z", urls={"web": "https://pr-1.x/"}),
    )
    # A rollback request carries no ref or author; the playbook records the SHA it serves.
    write_run(
        tmp_path,
        "20260103T000000Z_demo-pr1_rollback_c",
        rollback_status,
        facts("rollback", sha=SHA1, time="2026-01-03T00:00:00Z", ref="", author="", ports={}),
    )


def test_fold_rollback_serves_earlier_sha(tmp_path):
    write_deploy_and_rollback(tmp_path, "successful")

    [preview] = registry.list_previews(tmp_path)

    assert preview.sha == SHA1
    assert preview.status == "active"
    assert preview.updated == "2026-01-03T00:00:00Z"
    assert preview.created == "2026-01-01T00:00:00Z"
    assert preview.last_run == "20260103T000000Z_demo-pr1_rollback_c"
    assert preview.ref == "feature"
    assert preview.author == "octocat"
    assert preview.urls == {"web": "https://pr-1.x/"}


@pytest.mark.parametrize("status", ["failed", None])
def test_fold_unfinished_rollback_changes_only_last_run(tmp_path, status):
    write_deploy_and_rollback(tmp_path, status)

    [preview] = registry.list_previews(tmp_path)

    assert preview.sha == SHA2
    assert preview.status == "active"
    assert preview.updated == "2026-01-02T00:00:00Z"
    assert preview.last_run == "20260103T000000Z_demo-pr1_rollback_c"


def test_fold_rollback_of_unknown_preview_ignored(tmp_path):
    write_run(
        tmp_path, "20260101T000000Z_demo-pr7_rollback_a", "failed", facts("rollback", number=7)
    )

    assert registry.list_previews(tmp_path) == []


def test_fold_cleanup_after_rollback_removes(tmp_path):
    write_deploy_and_rollback(tmp_path, "successful")
    write_run(
        tmp_path,
        "20260104T000000Z_demo-pr1_cleanup_d",
        "successful",
        facts("cleanup", time="2026-01-04T00:00:00Z"),
    )

    assert registry.list_previews(tmp_path) == []


def test_cached_fold_matches_rollback(tmp_path):
    write_deploy_and_rollback(tmp_path, "successful")
    first = registry.list_previews(tmp_path)

    cached = registry.list_previews(tmp_path)

    assert (tmp_path / registry.FOLD_NAME).exists()
    assert cached == first
