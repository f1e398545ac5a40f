"""The sandbox host itself: boot, run a command inside, and leave nothing behind."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.sandbox import Sandbox, SandboxError

pytestmark = pytest.mark.sandbox

PREVIEWS = str(Path(sys.executable).with_name("previews"))


def processes_with(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command:
            found.append(f"{entry.name}: {command}")
    return found


def test_down_leaves_nothing(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the sandbox host needs root")
    state = Path("/run/pr-previews-sandbox-lifecycle-test")
    sandbox = Sandbox(state)
    marker = f"sleep {os.getpid()}.5"

    pid = sandbox.up()
    started = sandbox.run(
        ["systemd-run", "--unit=left-behind", *marker.split()], capture_output=True
    )
    hostname = sandbox.run(["hostname"], capture_output=True).stdout.strip()
    inside = processes_with(marker)
    sandbox.down()

    assert started.returncode == 0, started.stderr
    assert hostname == "previews-sandbox"
    assert inside, "the unit's process was not running before down"
    assert processes_with(marker) == []
    assert not Path(f"/proc/{pid}").exists()
    assert not state.exists()
    assert str(state) not in Path("/proc/self/mountinfo").read_text()


def test_status_and_exec_when_down():
    state = Path("/run/pr-previews-sandbox-never-started")

    assert Sandbox(state).init_pid() is None
    with pytest.raises(SandboxError, match="not running"):
        Sandbox(state).exec_argv(["true"])


def test_up_without_root_is_refused():
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PREVIEWS, "sandbox", "up"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )

    assert result.returncode == 1
    assert "needs root" in result.stderr
    assert "Traceback" not in result.stderr
