"""The audit: preview resources found by name, compared with the registry."""

import fcntl
import json
import os
import time
from pathlib import Path

import pytest

from bridge import audit
from bridge.intake import Accepted, Intake
from bridge.models import PreviewRequest
from bridge.settings import PROJECT_DIR, Settings
from tests.unit.preview_host import FakeProbe, make_layout, plant_preview, register


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def layout(tmp_path):
    return make_layout(tmp_path)


@pytest.fixture
def probe():
    return FakeProbe()


def kinds(finding: audit.Finding) -> list[str]:
    return [resource.kind for resource in finding.resources]


def test_clean_host_has_nothing_to_report(settings, layout, probe):
    plant_preview(layout, probe, "demo-pr1")
    register(settings, 1)

    report = audit.audit(settings, layout, probe)

    assert report.clean()
    assert report.findings == []


def test_orphan_lists_every_kind_of_resource(settings, layout, probe):
    plant_preview(layout, probe, "demo-pr7")
    (layout.vhosts_dir / "demo-pr7.conf.1234.2026-01-01@00:00:00~").write_text("server {}\n")
    (layout.vhosts_dir / "demo-pr7.conf.broken").write_text("garbage\n")
    probe.units.append(("demo-pr7-build.service", "loaded", "active"))

    [finding] = audit.audit(settings, layout, probe).findings

    assert (finding.preview_id, finding.number, finding.reason) == ("demo-pr7", 7, "orphaned")
    assert sorted(set(kinds(finding))) == sorted(
        [
            "unit file",
            "unit",
            "vhost",
            "vhost backup",
            "quarantined vhost",
            "release directory",
            "token",
            "port reservation",
            "published logs",
            "user",
            "group",
            "git ref",
        ]
    )
    assert kinds(finding).count("unit") == 3
    assert str(layout.previews_root / "demo-pr7") in [r.name for r in finding.resources]


def test_similar_names_are_not_matched(settings, layout, probe):
    plant_preview(layout, probe, "demo-pr12")
    register(settings, 12)
    for name in ("shop-pr1", "demo-pr01", "demo-pr1x", "demo-pr", "demo-pr12345678"):
        (layout.previews_root / name).mkdir()
    (layout.units_dir / "demo-pr1.service").write_text("")
    probe.user_names.append("demo-previews")
    probe.ref_names += ["refs/pull/1/merge", "refs/heads/main", "refs/pull/01/head"]

    report = audit.audit(settings, layout, probe)

    assert report.findings == []


def test_unit_systemd_only_remembers_is_no_resource(settings, layout, probe):
    probe.units += [
        ("demo-pr3-web.service", "not-found", "inactive"),
        ("demo-pr4-web.service", "not-found", "failed"),
    ]

    [finding] = audit.audit(settings, layout, probe).findings

    assert finding.preview_id == "demo-pr4"
    assert finding.resources == [audit.Resource("unit", "demo-pr4-web.service (not-found, failed)")]


def test_entry_without_resources_is_reported(settings, layout, probe):
    register(settings, 5)
    register(settings, 6, status="failed")

    findings = audit.audit(settings, layout, probe).findings

    assert [(f.preview_id, f.reason, f.registry_status) for f in findings] == [
        ("demo-pr5", "resources gone", "active"),
        ("demo-pr6", "resources gone", "failed"),
    ]


def test_failed_cleanup_as_last_run_is_reported(settings, layout, probe):
    plant_preview(layout, probe, "demo-pr8")
    register(settings, 8, day=1)
    register(settings, 8, action="cleanup", status="failed", day=2)
    plant_preview(layout, probe, "demo-pr9")
    register(settings, 9, action="cleanup", status="failed", day=1)
    register(settings, 9, day=2)

    [finding] = audit.audit(settings, layout, probe).findings

    assert (finding.preview_id, finding.reason) == ("demo-pr8", "cleanup unfinished")


def test_successful_cleanup_leaves_no_entry(settings, layout, probe):
    register(settings, 10, day=1)
    register(settings, 10, action="cleanup", day=2)

    assert audit.audit(settings, layout, probe).clean()


def test_preview_with_a_live_run_unit_is_skipped(settings, layout, probe):
    plant_preview(layout, probe, "demo-pr11")
    probe.run_units = {"20260101T000000000000Z_demo-pr11_deploy_abcdef"}

    report = audit.audit(settings, layout, probe)

    assert report.findings == []
    assert report.skipped == ["demo-pr11"]


def test_preview_with_a_held_lock_is_skipped(settings, layout, probe):
    plant_preview(layout, probe, "demo-pr13")
    locks = settings.data_dir / "locks"
    locks.mkdir(parents=True)
    with (locks / "demo-pr13.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)

        report = audit.audit(settings, layout, probe)

    assert report.skipped == ["demo-pr13"]
    assert [f.preview_id for f in audit.audit(settings, layout, probe).findings] == ["demo-pr13"]


def test_preview_with_an_accepted_request_is_skipped(settings, layout, probe):
    plant_preview(layout, probe, "demo-pr14")
    intake = Intake(settings.state_dir)
    intake.prepare()
    request = PreviewRequest(action="deploy", number=14, sha="1" * 40)
    intake.put(Accepted(request, "20260101T000000000000Z_demo-pr14_deploy_abcdef", "now"))

    report = audit.audit(settings, layout, probe)

    assert (report.findings, report.skipped) == ([], ["demo-pr14"])


def test_dead_run_is_reported_and_left_unmarked(settings, layout, probe):
    ident = register(settings, 15, status=None)
    folder = settings.runner_dir / "artifacts" / ident
    (folder / "command").write_text("{}")

    report = audit.audit(settings, layout, probe)

    assert report.interrupted_runs == [ident]
    assert not (folder / "status").exists()


def test_expired_markers(settings, layout, probe):
    old = layout.gone_dir / "pr-1.previews.test"
    old.write_text("demo-pr1\n")
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    (layout.gone_dir / "pr-2.previews.test").write_text("demo-pr2\n")

    report = audit.audit(settings, layout, probe)

    assert report.expired_markers == ["pr-1.previews.test"]
    assert audit.expired_markers(layout.gone_dir, 40) == []
    assert audit.expired_markers(layout.gone_dir / "missing", 1) == []


def test_report_as_json(settings, layout, probe):
    plant_preview(layout, probe, "demo-pr16")

    data = json.loads(json.dumps(audit.audit(settings, layout, probe).as_dict()))

    [finding] = data["findings"]
    assert finding["preview_id"] == "demo-pr16"
    assert finding["detail"] == "resources of a preview that is not in the registry"
    assert {"kind": "vhost", "name": str(layout.vhosts_dir / "demo-pr16.conf")} in finding[
        "resources"
    ]


def test_gitlab_refs_follow_the_pull_ref(settings, layout, probe):
    layout = audit.Layout(
        layout.previews_root, layout.state_dir, "refs/merge-requests/{number}/head"
    )
    probe.ref_names = ["refs/merge-requests/17/head", "refs/pull/18/head"]

    [finding] = audit.audit(settings, layout, probe).findings

    assert (finding.preview_id, kinds(finding)) == ("demo-pr17", ["git ref"])


def test_layout_from_the_sandbox_inventory():
    settings = Settings(inventory=PROJECT_DIR / "inventory" / "sandbox")

    layout = audit.read_layout(settings)

    assert layout.previews_root == Path("/srv/previews")
    assert layout.state_dir == Path("/var/lib/pr-previews")
    assert layout.pull_ref == "refs/pull/{number}/head"


@pytest.mark.parametrize(
    ("hosts", "group_vars", "message"),
    [
        ("a: {}\n      b: {}", "previews_root: /srv/previews\npreviews_state_dir: /x\n", "2 hosts"),
        ("a: {}", "previews_root: '{{ x }}'\npreviews_state_dir: /x\n", "previews_root"),
        ("a: {}", "previews_root: /srv\n", "previews_state_dir"),
        (
            "a: {}",
            "previews_root: /srv\npreviews_state_dir: /x\npreviews_pull_ref: x\n",
            "{number}",
        ),
    ],
)
def test_layout_rejects_an_unusable_inventory(tmp_path, hosts, group_vars, message):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(f"previews:\n  hosts:\n      {hosts}\n")
    (inventory / "group_vars" / "previews.yml").write_text(group_vars)

    with pytest.raises(RuntimeError, match=message):
        audit.read_layout(Settings(inventory=inventory))


def test_audit_needs_root(monkeypatch, settings):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    with pytest.raises(RuntimeError, match="must run as root"):
        audit.print_audit(settings, as_json=False)
