"""The sandbox host: a real systemd booted as PID 1 of its own namespaces.

The sandbox runs over an overlay of the machine's root file system, so it uses the
machine's programs, but nothing it writes outlives it. This checkout is mounted read-only
at its own path. The sandbox shares the network, so its nginx and its services listen on
the machine's loopback addresses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bridge.settings import PROJECT_DIR

logger = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/run/pr-previews-sandbox")
BOOT_TIMEOUT_SECONDS = 90.0
SHUTDOWN_TIMEOUT_SECONDS = 60.0

MSG_NOT_ROOT = (
    "the sandbox host needs root: it mounts an overlay and boots systemd in new "
    "namespaces; run this command as root"
)
MSG_NOT_RUNNING = "the sandbox host is not running; start it with 'previews sandbox up'"


class SandboxError(RuntimeError):
    """The sandbox host could not be started, reached or stopped."""


@dataclass(frozen=True)
class Sandbox:
    """A sandbox host whose state (PID files, boot log, mount point) lives in state_dir."""

    state_dir: Path = DEFAULT_STATE_DIR

    @property
    def _launcher_pid_file(self) -> Path:
        return self.state_dir / "unshare.pid"

    @property
    def _init_pid_file(self) -> Path:
        return self.state_dir / "init.pid"

    @property
    def _mount_point(self) -> Path:
        return self.state_dir / "mnt"

    @property
    def boot_log(self) -> Path:
        return self.state_dir / "boot.log"

    def init_pid(self) -> int | None:
        """Return the machine-side PID of the sandbox's systemd, or None if it is not running."""
        pid = _read_pid(self._init_pid_file)
        if pid is None or not _process_is(pid, "systemd"):
            return None
        return pid

    def up(self) -> int:
        """Boot the sandbox host and wait until its systemd has finished starting up."""
        _require_root()
        running = self.init_pid()
        if running is not None:
            return running

        self._remove_state()
        self._mount_point.mkdir(parents=True, mode=0o700)
        # The sandbox's disk: a tmpfs in the machine's mount namespace, so that it outlives a
        # reboot of the sandbox, and goes with `down`.
        _mount_disk(self._mount_point)
        return self._boot()

    def reboot(self) -> int:
        """Halt the sandbox host as a shutdown would, then boot it again on the same disk."""
        _require_root()
        if self.init_pid() is None:
            raise SandboxError(MSG_NOT_RUNNING)
        self._halt()
        return self._boot()

    def down(self) -> None:
        """Shut the sandbox host down and remove every trace of it from the machine."""
        _require_root()
        self._halt()
        _unmount_disk(self._mount_point)
        self._remove_state()

    def _boot(self) -> int:
        boot_script = resources.files("bridge").joinpath("sandbox_boot.sh")
        with resources.as_file(boot_script) as script:
            launcher_pid = self._spawn_launcher(script)
        self._launcher_pid_file.write_text(f"{launcher_pid}\n")

        init_pid = self._wait_for_init(launcher_pid)
        self._init_pid_file.write_text(f"{init_pid}\n")
        self._wait_for_boot(init_pid)
        logger.info("sandbox host is up, systemd has PID %s", init_pid)
        return init_pid

    def _halt(self) -> None:
        init_pid = self.init_pid()
        launcher_pid = _read_pid(self._launcher_pid_file)
        if init_pid is not None:
            # SIGRTMIN+3 requests an orderly halt from systemd, which stops every unit first.
            os.kill(init_pid, signal.SIGRTMIN + 3)
            if not _wait_for_exit(init_pid, SHUTDOWN_TIMEOUT_SECONDS):
                logger.warning("sandbox systemd %s ignored the halt request, killing it", init_pid)
                # Killing PID 1 of a PID namespace kills every process in it.
                os.kill(init_pid, signal.SIGKILL)
                _wait_for_exit(init_pid, 10.0)
        if launcher_pid is not None and _process_is(launcher_pid, "unshare"):
            _wait_for_exit(launcher_pid, 10.0)

    def exec_argv(self, command: list[str], cwd: Path | None = None) -> list[str]:
        """Return the argv that runs command inside the sandbox host, in cwd or the current
        directory."""
        init_pid = self.init_pid()
        if init_pid is None:
            raise SandboxError(MSG_NOT_RUNNING)
        # nsenter --wd would resolve the directory in the machine's mount namespace, which
        # is a different inode from the same path on the overlay, so change it from inside.
        return [
            "nsenter",
            "-t",
            str(init_pid),
            "-a",
            "--",
            "env",
            f"--chdir={cwd or Path.cwd()}",
            *command,
        ]

    def run(
        self, command: list[str], cwd: Path | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        """Run command inside the sandbox host with stdin from /dev/null and return its result."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("text", True)
        return subprocess.run(self.exec_argv(command, cwd), check=False, **kwargs)  # type: ignore[call-overload, no-any-return]

    def _spawn_launcher(self, script: Path) -> int:
        # posix_spawn rather than subprocess.Popen: the launcher outlives this process,
        # and a Popen object would warn that its child is still running.
        argv = [
            "unshare",
            "--pid",
            "--fork",
            "--mount",
            "--cgroup",
            "--uts",
            "--ipc",
            "--kill-child",
            "--",
            "/bin/sh",
            str(script),
            str(self._mount_point),
            str(PROJECT_DIR),
        ]
        log_fd = os.open(self.boot_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            return os.posix_spawnp(
                "unshare",
                argv,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(log_fd)

    def _wait_for_init(self, launcher_pid: int) -> int:
        deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if _has_exited(launcher_pid):
                raise SandboxError(f"the sandbox host failed to boot; see {self.boot_log}")
            for child in _children(launcher_pid):
                if _process_is(child, "systemd"):
                    return child
            time.sleep(0.1)
        raise SandboxError(f"systemd did not start in the sandbox; see {self.boot_log}")

    def _wait_for_boot(self, init_pid: int) -> None:
        # systemctl fails to connect until systemd has set up its private socket, so retry.
        argv = [
            "nsenter",
            "-t",
            str(init_pid),
            "-a",
            "--",
            "systemctl",
            "is-system-running",
            "--wait",
        ]
        deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
        state = ""
        while time.monotonic() < deadline:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=BOOT_TIMEOUT_SECONDS,
                check=False,
            )
            state = result.stdout.strip()
            if state in {"running", "degraded"}:
                break
            if state not in {"", "offline", "initializing", "starting"}:
                raise SandboxError(f"the sandbox host failed to boot: systemd reports {state!r}")
            time.sleep(0.2)
        else:
            raise SandboxError(f"the sandbox host did not finish booting (state {state!r})")
        if state == "degraded":
            logger.warning("the sandbox host booted with failed units (systemctl --failed)")

    def _remove_state(self) -> None:
        # A disk left mounted by a crash would keep the old sandbox's files.
        _unmount_disk(self._mount_point)
        for path in (self._launcher_pid_file, self._init_pid_file, self.boot_log):
            path.unlink(missing_ok=True)
        if self._mount_point.exists():
            self._mount_point.rmdir()
        if self.state_dir.exists():
            self.state_dir.rmdir()


def _mount_disk(path: Path) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=0700", "previews-sandbox", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _unmount_disk(path: Path) -> None:
    if os.path.ismount(path):
        # Lazy: a shell of the operator's may still sit in the sandbox's files.
        subprocess.run(["umount", "--lazy", str(path)], check=True, stdin=subprocess.DEVNULL)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise SandboxError(MSG_NOT_ROOT)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _process_is(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except (FileNotFoundError, ProcessLookupError):
        return False


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def _has_exited(pid: int) -> bool:
    # The launcher is this process's child when it was started here, so reap it: a zombie
    # still has a /proc entry.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not Path(f"/proc/{pid}").exists()


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _has_exited(pid):
            return True
        time.sleep(0.1)
    return False
