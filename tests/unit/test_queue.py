import threading

from bridge import queue as queue_module
from bridge.models import PreviewRequest
from bridge.settings import Settings

SHA = "a" * 40


class SlowLaunch:
    """Stands in for the run command: records runs and blocks PR 1 until released."""

    def __init__(self):
        self.started: list[tuple[int, str]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, settings, request, ident):
        with self.lock:
            self.started.append((request.number, ident))
        if request.number == 1:
            self.release.wait(10)
        return 0


def test_queue_other_preview_not_blocked(monkeypatch, tmp_path):
    launch = SlowLaunch()
    monkeypatch.setattr(queue_module, "launch", launch)
    runs = queue_module.RunQueue(Settings(data_dir=tmp_path, max_concurrent_runs=2))

    first = [runs.submit(PreviewRequest(action="deploy", number=1, sha=SHA)) for _ in range(3)]
    _, other = runs.submit(PreviewRequest(action="deploy", number=2, sha=SHA))

    assert other.result(timeout=5) == 0
    assert [number for number, _ in launch.started].count(1) == 1
    launch.release.set()
    assert [future.result(timeout=5) for _, future in first] == [0, 0, 0]
    runs.shutdown()


def test_queue_runs_one_preview_in_order(monkeypatch, tmp_path):
    launch = SlowLaunch()
    launch.release.set()
    monkeypatch.setattr(queue_module, "launch", launch)
    runs = queue_module.RunQueue(Settings(data_dir=tmp_path, max_concurrent_runs=2))

    submitted = [
        runs.submit(
            PreviewRequest(action=action, number=1, sha=SHA if action == "deploy" else None)
        )
        for action in ("deploy", "deploy", "cleanup")
    ]
    for _, future in submitted:
        future.result(timeout=5)

    assert [ident for _, ident in launch.started] == [ident for ident, _ in submitted]
    runs.shutdown()


def test_queue_reports_launch_error(monkeypatch, tmp_path):
    def failing_launch(settings, request, ident):
        raise FileNotFoundError("sudo")

    monkeypatch.setattr(queue_module, "launch", failing_launch)
    runs = queue_module.RunQueue(Settings(data_dir=tmp_path))

    _, future = runs.submit(PreviewRequest(action="cleanup", number=4))
    error = future.exception(timeout=5)
    _, later = runs.submit(PreviewRequest(action="cleanup", number=4))

    assert isinstance(error, FileNotFoundError)
    assert isinstance(later.exception(timeout=5), FileNotFoundError)
    runs.shutdown()
