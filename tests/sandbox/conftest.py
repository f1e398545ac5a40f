"""The sandbox host for end-to-end tests: booted once per session, provisioned by site.yml."""

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge import demo, https
from bridge.sandbox import Sandbox

# Another path lets two test sessions run at once, each in a network namespace of its own.
STATE_DIR = Path(os.environ.get("PREVIEWS_TEST_SANDBOX_DIR", "/run/pr-previews-sandbox-tests"))
PORTS_USED = {8080: "nginx (HTTP)", 8443: "nginx (HTTPS)", 8700: "the bridge"}
ARTIFACTS = Path("/var/lib/pr-previews/runner/artifacts")


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Host:
    """The provisioned sandbox host and the steps the tests take on it."""

    sandbox: Sandbox
    secret: bytes
    context: https.ssl.SSLContext

    def run(self, *command: str) -> str:
        return demo.sandbox_output(self.sandbox, list(command))

    def push(self, number: int, message: str, files: dict[str, str | None] | None = None) -> str:
        return demo.push(self.sandbox, number, message, files or {"NOTE": message})

    def deliver(self, action: str, number: int, sha: str, ref: str = "feature") -> str:
        answer = demo.deliver(self.secret, action, number, sha, ref)
        assert answer["status"] == "accepted", answer
        return str(answer["run"])

    def wait(self, ident: str) -> str:
        return demo.wait_for_run(self.sandbox, ident)

    def open(self, number: int, message: str = "Open", files=None) -> str:
        """Publish a commit on the PR, deliver "opened" and wait for a successful run."""
        sha = self.push(number, message, files)
        ident = self.deliver("opened", number, sha)
        status = self.wait(ident)
        assert status == "successful", self.stdout(ident)
        return sha

    def stdout(self, ident: str) -> str:
        return self.run("cat", str(ARTIFACTS / ident / "stdout"))

    def runs(self) -> set[str]:
        return set(self.run("ls", "-1", str(ARTIFACTS)).split())

    def previews(self) -> dict[int, dict]:
        return demo.previews(self.sandbox)

    def urls(self, number: int) -> dict[str, str]:
        return demo.preview_urls(self.sandbox, number)

    def token(self, number: int) -> str:
        return self.run("cat", f"/var/lib/pr-previews/tokens/demo-pr{number}").strip()

    def get(self, url: str, headers: dict[str, str] | None = None) -> https.Response:
        return https.get(url, self.context, headers=headers)

    def ansible_module(self, module: str, arguments: str, *options: str) -> tuple[int, str]:
        """Run one module with ansible against the sandbox; return rc and the output."""
        result = self.sandbox.run(
            [str(demo.VENV_BIN / "ansible"), "previews", "-m", module, "-a", arguments, *options],
            cwd=Path(__file__).parents[2],
            capture_output=True,
        )
        return result.returncode, result.stdout + result.stderr

    def playbook(self, *args: str) -> tuple[int, dict[str, int], str]:
        """Run ansible-playbook by hand in the sandbox; return rc, the recap and the output."""
        result = self.sandbox.run(
            [str(demo.VENV_BIN / "ansible-playbook"), *args],
            cwd=Path(__file__).parents[2],
            capture_output=True,
        )
        recap = {}
        for line in result.stdout.splitlines():
            if line.startswith("sandbox ") and "ok=" in line:
                recap = {k: int(v) for k, v in (part.split("=") for part in line.split()[2:])}
        return result.returncode, recap, result.stdout + result.stderr


@pytest.fixture(scope="session")
def host():
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests boot the sandbox host and need root")
    busy = [f"{port} ({user})" for port, user in PORTS_USED.items() if _port_in_use(port)]
    if busy:
        pytest.fail(
            "ports the sandbox host needs are in use: "
            + ", ".join(busy)
            + "; stop the other sandbox with 'previews sandbox down'"
        )

    sandbox = Sandbox(STATE_DIR)
    sandbox.up()
    try:
        demo.provision(sandbox)
        demo.init_origin(sandbox)
        yield Host(sandbox, demo.webhook_secret(sandbox), demo.tls(sandbox))
    finally:
        sandbox.down()


def wait_until(condition, timeout: float = 30.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
