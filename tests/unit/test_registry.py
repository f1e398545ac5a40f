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
