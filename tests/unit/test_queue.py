import json

import pytest

from bridge.intake import Intake
from bridge.models import PreviewRequest
from bridge.queue import RunQueue
from bridge.settings import Settings
from tests.unit.fakes import Launcher, wait_for


def sha(n: int) -> str:
    return f"{n:040x}"


def deploy(number: int, n: int = 1) -> PreviewRequest:
    return PreviewRequest(action="deploy", number=number, sha=sha(n))


def cleanup(number: int) -> PreviewRequest:
    return PreviewRequest(action="cleanup", number=number)


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path, max_concurrent_runs=2)


def start(settings, launcher) -> RunQueue:
    queue = RunQueue(settings, launcher=launcher)
    queue.resume()
    return queue


def test_pushes_during_a_run_cause_one_more_run_of_the_last(settings):
    launcher = Launcher(hold={1})
    queue = start(settings, launcher)
    queue.submit(deploy(1, 1))
    wait_for(lambda: len(launcher.calls) == 1)

    for n in range(2, 12):
        queue.submit(deploy(1, n))
    launcher.release()
    wait_for(queue.idle)

    assert [call.sha for call in launcher.of(1)] == [sha(1), sha(11)]
    queue.shutdown()


def test_other_previews_run_while_one_is_held(settings):
    launcher = Launcher(hold={1})
    queue = start(settings, launcher)
    queue.submit(deploy(1))
    queue.submit(deploy(1, 2))

    queue.submit(deploy(2))
    wait_for(lambda: launcher.of(2))

    assert len(launcher.of(1)) == 1
    launcher.release()
    wait_for(queue.idle)
    queue.shutdown()


def test_global_limit_on_runs(settings):
    launcher = Launcher(hold={1, 2, 3})
    queue = start(settings, launcher)
    for number in (1, 2, 3):
        queue.submit(deploy(number))
    wait_for(lambda: len(launcher.calls) == 2)

    assert launcher.active == 2
    launcher.release()
    wait_for(queue.idle)
    assert launcher.most_active == 2
    assert len(launcher.calls) == 3
    queue.shutdown()


def test_cleanup_during_a_deploy_runs_after_it(settings):
    launcher = Launcher(hold={1})
    queue = start(settings, launcher)
    queue.submit(deploy(1))
    wait_for(lambda: launcher.calls)

    queue.submit(deploy(1, 2))
    queue.submit(cleanup(1))
    launcher.release()
    wait_for(queue.idle)

    assert [call.action for call in launcher.of(1)] == ["deploy", "cleanup"]
    queue.shutdown()


def test_accepted_requests_survive_a_killed_bridge(settings):
    """A queue that is dropped without shutdown stands for a bridge killed with SIGKILL."""
    held = Launcher(hold={1, 2, 3})
    first = start(settings.model_copy(update={"max_concurrent_runs": 1}), held)
    running = first.submit(deploy(1))
    wait_for(lambda: held.calls)
    waiting = [first.submit(deploy(2)), first.submit(cleanup(3))]

    launcher = Launcher()
    second = start(settings, launcher)
    wait_for(second.idle)

    ran = {(call.number, call.action): call.ident for call in launcher.calls}
    assert sorted(ran) == [(1, "deploy"), (2, "deploy"), (3, "cleanup")]
    # A waiting request keeps its ident; the interrupted run gets a new one for its artifacts.
    assert ran[2, "deploy"] == waiting[0].ident
    assert ran[3, "cleanup"] == waiting[1].ident
    assert ran[1, "deploy"] != running.ident
    held.release()


def test_restart_keeps_a_newer_request_over_the_started_one(settings):
    intake = Intake(settings.state_dir)
    intake.prepare()
    held = Launcher(hold={1})
    queue = RunQueue(settings, intake=intake, launcher=held)
    older = queue.submit(deploy(1, 1))
    wait_for(lambda: intake.started())
    newer = queue.submit(deploy(1, 2))

    launcher = Launcher()
    start(settings, launcher)
    wait_for(lambda: launcher.calls)

    assert [call.ident for call in launcher.calls] == [newer.ident]
    assert older.ident != newer.ident
    held.release()


def test_a_failed_launch_does_not_stop_the_preview(settings):
    calls = []

    def launcher(settings, request, ident):
        calls.append(ident)
        if len(calls) == 1:
            raise ValueError("an argument the run command rejects")
        return 0

    queue = start(settings, launcher)
    queue.submit(cleanup(4))
    wait_for(queue.idle)
    queue.submit(cleanup(4))
    wait_for(lambda: len(calls) == 2)
    wait_for(queue.idle)
    queue.shutdown()


def test_a_failing_listener_does_not_stop_the_preview(settings):
    launcher = Launcher()
    queue = start(settings, launcher)

    class Failing:
        def run_started(self, accepted):
            raise RuntimeError("forge down")

        def run_finished(self, accepted, status):
            raise RuntimeError("forge down")

    queue.add_listener(Failing())
    queue.submit(deploy(1))
    wait_for(queue.idle)
    queue.submit(deploy(1, 2))
    wait_for(lambda: len(launcher.calls) == 2)
    queue.shutdown()


def test_pending_file_is_complete_json(settings):
    held = Launcher(hold={1})
    queue = RunQueue(settings, launcher=held)
    queue.intake.prepare()
    queue.submit(deploy(1))
    queue.submit(deploy(1, 2))

    files = list((settings.state_dir / "pending").iterdir()) + list(
        (settings.state_dir / "started").iterdir()
    )
    for path in files:
        assert json.loads(path.read_text())["request"]["number"] == 1
    assert not [path for path in files if path.name.startswith(".")]
    held.release()
