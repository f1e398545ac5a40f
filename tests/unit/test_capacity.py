"""Capacity admission: measurements, limits and the reject, wait and evict policies."""

from pathlib import Path

import pytest

from bridge import capacity, pins
from bridge.capacity import MIB, HostAccess, Usage
from bridge.models import PreviewRequest
from bridge.settings import Settings
from tests.unit.fakes import Launcher, write_run

SHA = "b" * 40
ROOMY = Usage(previews=0, memory_available=8192 * MIB, disk_free=100_000 * MIB)


class Host:
    """A host whose usage follows the preview directories under the root, and a clock."""

    def __init__(self, settings: Settings, memory_mb: int = 8192, disk_mb: int = 100_000):
        self.settings = settings
        self.memory_mb = memory_mb
        self.disk_mb = disk_mb
        self.now = 0.0
        self.sleeps: list[float] = []
        self.launcher = Launcher()
        self.on_sleep = lambda: None

    def measure(self, root: Path) -> Usage:
        previews = sum(1 for path in root.glob("*-pr*") if path.is_dir())
        return Usage(previews, self.memory_mb * MIB, self.disk_mb * MIB)

    def launch(self, settings, request, ident) -> int:
        status = self.launcher(settings, request, ident)
        if status == 0:
            (settings.root / settings.preview_id(request.number)).rmdir()
        return status

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep()

    def access(self) -> HostAccess:
        return HostAccess(
            measure=self.measure, launch=self.launch, sleep=self.sleep, clock=lambda: self.now
        )


@pytest.fixture
def settings(tmp_path):
    (tmp_path / "srv").mkdir()
    return Settings(project="demo", data_dir=tmp_path / "data", root=tmp_path / "srv")


def on_host(settings: Settings, number: int, time: str, project: str = "demo", status="successful"):
    """Record a deploy of the preview in the registry and give it a directory."""
    preview_id = f"{project}-pr{number}"
    facts = {"id": preview_id, "number": number, "action": "deploy", "sha": SHA, "time": time}
    write_run(settings.runner_dir, f"20260101T000000Z_{preview_id}_deploy_a", status, facts)
    (settings.root / preview_id).mkdir()


def deploy(number: int) -> PreviewRequest:
    return PreviewRequest(action="deploy", number=number, sha=SHA)


def admit(settings, host, number=9, **limits):
    return capacity.admit(settings.model_copy(update=limits), deploy(number), host.access())


def test_shortfalls_lists_every_limit(settings):
    settings = settings.model_copy(
        update={"max_previews": 2, "min_free_memory_mb": 512, "min_free_disk_mb": 2048}
    )

    reasons = capacity.shortfalls(Usage(2, 100 * MIB, 1000 * MIB), settings)

    assert reasons == [
        "2 previews on the host, the maximum is 2",
        "100 MiB of memory available, the minimum is 512 MiB",
        f"1000 MiB free on {settings.root}, the minimum is 2048 MiB",
    ]
    assert capacity.shortfalls(Usage(1, 512 * MIB, 2048 * MIB), settings) == []


def test_no_limit_on_previews_by_default(settings):
    assert capacity.shortfalls(Usage(10_000, 8192 * MIB, 100_000 * MIB), settings) == []


def test_read_memory_available(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 2048 kB\nMemFree: 100 kB\nMemAvailable:    1024 kB\n")

    assert capacity.read_memory_available(meminfo) == 1024 * 1024


def test_measure_counts_preview_directories(settings):
    for name in ["demo-pr1", "shop-pr22", "demo-pr0", "notes", ".demo-pr3"]:
        (settings.root / name).mkdir()

    usage = capacity.measure(settings.root)

    assert usage.previews == 2
    assert usage.memory_available > 0
    assert usage.disk_free > 0


def test_update_is_always_admitted(settings):
    host = Host(settings, memory_mb=1)
    on_host(settings, 9, "2026-01-01T00:00:00Z")

    assert admit(settings, host, 9, max_previews=1) == ""
    assert host.launcher.calls == []


def test_cleanup_is_never_checked(settings):
    host = Host(settings, memory_mb=1)
    request = PreviewRequest(action="cleanup", number=9)

    assert capacity.admit(settings, request, host.access()) == ""


def test_admitted_preview_reserves_its_directory(settings):
    host = Host(settings)

    assert admit(settings, host, 9, max_previews=1) == ""
    assert (settings.root / "demo-pr9").is_dir()
    # The reservation counts: the next new preview finds the host full.
    assert "1 preview on the host, the maximum is 1" in admit(settings, host, 10, max_previews=1)


def test_reject_policy_returns_the_reason(settings):
    host = Host(settings)
    on_host(settings, 1, "2026-01-01T00:00:00Z")

    reason = admit(settings, host, max_previews=1, capacity_policy="reject")

    assert reason.startswith("The host has no capacity for a new preview (capacity policy reject)")
    assert "1 preview on the host, the maximum is 1" in reason
    assert not (settings.root / "demo-pr9").exists()
    assert host.sleeps == []


def test_memory_and_disk_minimums(settings):
    reason = admit(settings, Host(settings, memory_mb=255, disk_mb=1023))

    assert "255 MiB of memory available, the minimum is 256 MiB" in reason
    assert "1023 MiB free on" in reason
    assert "the minimum is 1024 MiB" in reason


def test_wait_policy_admits_once_room_frees(settings):
    host = Host(settings)
    on_host(settings, 1, "2026-01-01T00:00:00Z")

    def close_after_three_polls():
        if len(host.sleeps) == 3:
            (settings.root / "demo-pr1").rmdir()

    host.on_sleep = close_after_three_polls

    reason = admit(
        settings, host, max_previews=1, capacity_policy="wait", capacity_wait_seconds=600
    )

    assert reason == ""
    assert host.sleeps == [capacity.WAIT_POLL_SECONDS] * 3
    assert (settings.root / "demo-pr9").is_dir()


def test_wait_policy_gives_up_after_its_time(settings):
    host = Host(settings)
    on_host(settings, 1, "2026-01-01T00:00:00Z")

    reason = admit(settings, host, max_previews=1, capacity_policy="wait", capacity_wait_seconds=25)

    assert "after waiting 25 s (capacity policy wait)" in reason
    assert sum(host.sleeps) == 25
    assert host.sleeps[-1] == 5
    assert not (settings.root / "demo-pr9").exists()


def test_evict_policy_removes_the_least_recently_used(settings):
    host = Host(settings)
    on_host(settings, 1, "2026-01-03T00:00:00Z")
    on_host(settings, 2, "2026-01-01T00:00:00Z")
    on_host(settings, 3, "2026-01-02T00:00:00Z")

    reason = admit(settings, host, max_previews=3, capacity_policy="evict")

    assert reason == ""
    [call] = host.launcher.calls
    assert (call.number, call.action) == (2, "cleanup")
    assert "_demo-pr2_cleanup_" in call.ident
    assert (settings.root / "demo-pr9").is_dir()


def test_evict_skips_pinned_running_and_other_projects(settings):
    host = Host(settings)
    on_host(settings, 1, "2026-01-01T00:00:00Z")
    on_host(settings, 2, "2026-01-02T00:00:00Z", status=None)
    on_host(settings, 3, "2026-01-03T00:00:00Z", project="shop")
    on_host(settings, 4, "2026-01-04T00:00:00Z")
    pins.pin(settings.pins_dir, "demo-pr1")

    reason = admit(settings, host, max_previews=4, capacity_policy="evict")

    assert reason == ""
    assert [call.number for call in host.launcher.calls] == [4]


def test_evict_skips_previews_not_on_the_host(settings):
    host = Host(settings)
    on_host(settings, 1, "2026-01-01T00:00:00Z")
    on_host(settings, 2, "2026-01-02T00:00:00Z")
    # A rejected first deploy is in the registry but has no directory.
    (settings.root / "demo-pr1").rmdir()
    (settings.root / "demo-pr5").mkdir()

    admit(settings, host, max_previews=2, capacity_policy="evict")

    assert [call.number for call in host.launcher.calls] == [2]


def test_evict_without_candidates_rejects(settings):
    host = Host(settings)
    on_host(settings, 1, "2026-01-01T00:00:00Z")
    pins.pin(settings.pins_dir, "demo-pr1")

    reason = admit(settings, host, max_previews=1, capacity_policy="evict")

    assert "no unpinned preview of this project to evict" in reason
    assert host.launcher.calls == []


def test_evict_at_most_one_preview(settings):
    host = Host(settings, memory_mb=100)
    on_host(settings, 1, "2026-01-01T00:00:00Z")
    on_host(settings, 2, "2026-01-02T00:00:00Z")

    reason = admit(settings, host, capacity_policy="evict")

    assert [call.number for call in host.launcher.calls] == [1]
    assert "100 MiB of memory available" in reason
    assert "PR 1 was evicted" in reason
    assert (settings.root / "demo-pr2").is_dir()


def test_failed_eviction_rejects(settings):
    host = Host(settings)
    host.launcher.status = 1
    on_host(settings, 1, "2026-01-01T00:00:00Z")

    reason = admit(settings, host, max_previews=1, capacity_policy="evict")

    assert "the cleanup of PR 1 to make room failed" in reason
    assert not (settings.root / "demo-pr9").exists()
