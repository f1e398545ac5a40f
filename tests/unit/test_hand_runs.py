"""Runs of ansible-playbook started by hand reach the registry through the callback."""

import fcntl
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bridge import interrupted, registry

PROJECT = Path(__file__).resolve().parents[2]
PLAYBOOK = """
- name: Record a preview like tasks/request.yml
  hosts: all
  gather_facts: false
  tasks:
    - name: Record the request in the registry
      ansible.builtin.set_stats:
        data:
          preview:
            id: demo-pr{{ number }}
            number: "{{ number | int }}"
            action: deploy
            sha: "{{ '5' * 40 }}"
            time: "{{ now(utc=true, fmt='%Y-%m-%dT%H:%M:%S.%fZ') }}"
    - name: Fail when asked to
      ansible.builtin.fail:
        msg: the build failed
      when: fail | bool
"""


def ansible_playbook(tmp_path, number, fail=False, **environment):
    playbook = tmp_path / "record.yml"
    playbook.write_text(PLAYBOOK)
    env = {
        **{name: value for name, value in os.environ.items() if name != "AWX_ISOLATED_DATA_DIR"},
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "PREVIEWS_DATA_DIR": str(tmp_path / "data"),
        **environment,
    }
    (tmp_path / "data" / "runner").mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"number={number} preview_pr={number} fail={fail}",
        str(playbook),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def test_hand_run_waits_for_the_preview_lock(tmp_path):
    locks = tmp_path / "data" / "locks"
    locks.mkdir(parents=True)
    finished = []
    with (locks / "demo-pr16.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        thread = threading.Thread(target=lambda: finished.append(ansible_playbook(tmp_path, 16)))
        thread.start()
        thread.join(8)
        assert thread.is_alive(), "the run did not wait for the lock"
    thread.join(60)

    [result] = finished
    assert result.returncode == 0, result.stdout + result.stderr
    assert "waiting for the run in progress of demo-pr16" in result.stdout


def test_hand_run_appears_in_the_registry(tmp_path):
    result = ansible_playbook(tmp_path, 12)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pr-previews: recording this run as" in result.stdout
    [preview] = registry.list_previews(tmp_path / "data" / "runner")
    assert preview.id == "demo-pr12"
    assert preview.status == "active"
    [run] = registry.read_runs(tmp_path / "data" / "runner")
    folder = tmp_path / "data" / "runner" / "artifacts" / run.ident
    assert (folder / "rc").read_text() == "0"
    assert "TASK [Record the request in the registry]" in (folder / "stdout").read_text()
    # The playbook's process has ended, so the run would count as dead without its status.
    process = json.loads((folder / "process.json").read_text())
    assert process["pid"] > 1
    assert process["start_time"] > 0
    assert interrupted.is_dead(folder, set())


def test_failed_hand_run_is_recorded_as_failed(tmp_path):
    result = ansible_playbook(tmp_path, 13, fail=True)

    assert result.returncode != 0
    [run] = registry.read_runs(tmp_path / "data" / "runner")
    assert run.status == "failed"
    [preview] = registry.list_previews(tmp_path / "data" / "runner")
    assert preview.status == "failed"


def test_nothing_is_recorded_under_ansible_runner(tmp_path):
    result = ansible_playbook(tmp_path, 14, AWX_ISOLATED_DATA_DIR=str(tmp_path / "runner"))

    assert result.returncode == 0
    assert not (tmp_path / "data" / "runner" / "artifacts").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the group of files written as root")
def test_hand_run_is_readable_by_the_runner_group(tmp_path):
    ansible_playbook(tmp_path, 15)

    artifacts = tmp_path / "data" / "runner" / "artifacts"
    for path in artifacts.rglob("*"):
        assert path.stat().st_mode & 0o040, path


STALE_PLAYBOOK = """
- name: Record a stale cleanup like cleanup-stale.yml
  hosts: all
  gather_facts: false
  tasks:
    - name: Record the run in the registry
      ansible.builtin.set_stats:
        data:
          preview:
            id: ""
            project: demo
            action: cleanup-stale
            ids: [demo-pr12, demo-pr13]
            time: "{{ now(utc=true, fmt='%Y-%m-%dT%H:%M:%S.%fZ') }}"
    - name: Record that the preview is gone
      ansible.builtin.set_stats:
        data:
          previews_removed: [demo-pr12]
"""


def test_hand_stale_cleanup_drops_removed(tmp_path):
    ansible_playbook(tmp_path, 12)
    ansible_playbook(tmp_path, 13)
    playbook = tmp_path / "stale.yml"
    playbook.write_text(STALE_PLAYBOOK)
    env = {
        **{name: value for name, value in os.environ.items() if name != "AWX_ISOLATED_DATA_DIR"},
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "PREVIEWS_DATA_DIR": str(tmp_path / "data"),
    }
    command = [str(Path(sys.executable).with_name("ansible-playbook"))]
    command += ["-i", "localhost,", "-c", "local", str(playbook)]

    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    runner_dir = tmp_path / "data" / "runner"
    assert [preview.id for preview in registry.list_previews(runner_dir)] == ["demo-pr13"]
    stale = registry.read_runs(runner_dir)[-1]
    assert "_demo_cleanup-stale_" in stale.ident
    assert stale.removed == ["demo-pr12"]
