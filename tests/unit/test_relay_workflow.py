"""The GitHub Actions relay in examples/github-workflow.yml.

The static tests read the workflow as GitHub would. The other tests run its `run:` script
with bash and the environment GitHub gives a step. A local HTTP server takes the bridge's
place, and the bridge's own signature check and parser check what it received.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge import github
from bridge.forge import PullRequestEvent
from tests.unit.fakes import wait_for

ROOT = Path(__file__).parent.parent.parent
WORKFLOW = ROOT / "examples" / "github-workflow.yml"
FIXTURES = ROOT / "tests" / "fixtures" / "github"

# Contains shell syntax, and is longer than the 16 characters that the bridge requires.
SECRET = "s3cret 'single' \"double\" $(touch pwned-secret) `touch pwned-secret` é"
RUN_ID = "9876543210"
RUN_ATTEMPT = "2"
DELIVERY = f"relay-{RUN_ID}-{RUN_ATTEMPT}"
ACTIONS = ["opened", "reopened", "synchronize", "closed", "labeled"]
TOOLS = ["bash", "jq", "curl", "python3"]
# Programs whose arguments the tests record. openssl is among them, so that signing with
# `openssl dgst -hmac KEY` again would show up.
RECORDED_TOOLS = ["jq", "curl", "python3", "openssl"]
MISSING_TOOLS = [tool for tool in TOOLS if shutil.which(tool) is None]
needs_tools = pytest.mark.skipif(
    bool(MISSING_TOOLS),
    reason=f"the relay script needs {', '.join(MISSING_TOOLS)}; scripts/bootstrap installs them",
)

# Branch names that git accepts (no space, no newline) and that run a command, expand a
# variable or render a template wherever they reach shell or template text.
HOSTILE_REFS = [
    "$(touch${IFS}pwned-substitution)",
    "`touch${IFS}pwned-backtick`",
    '";touch${IFS}pwned-double-quote;#',
    "';touch${IFS}pwned-single-quote;#",
    "x&&touch${IFS}pwned-and||touch${IFS}pwned-or",
    "x|touch${IFS}pwned-pipe",
    "x>pwned-redirect",
    "<(touch${IFS}pwned-process-substitution)",
    "$PREVIEWS_WEBHOOK_SECRET",
    "${{secrets.PREVIEWS_WEBHOOK_SECRET}}",
    "{{lookup('pipe','touch${IFS}pwned-jinja')}}",
    "feature/ünïcode-ブランチ",
]


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeBridge:
    """An HTTP server on 127.0.0.1 that records each POST.

    It responds to each POST with the next status in statuses and repeats the last one.
    """

    statuses: list[HTTPStatus]
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""


@dataclass
class RelayRun:
    returncode: int
    stdout: str
    stderr: str
    argv: list[list[str]]
    leftovers: list[Path]


def load_workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def relay_step() -> dict[str, Any]:
    steps = [step for step in load_workflow()["jobs"]["relay"]["steps"] if "run" in step]
    assert len(steps) == 1, "expected exactly one run: step in job relay"
    return steps[0]


def strings_with_paths(
    node: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings_with_paths(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings_with_paths(value, (*path, str(index)))
    elif isinstance(node, str):
        yield path, node


def event_with_ref(tmp_path: Path, action: str, ref: str) -> dict[str, Any]:
    payload = json.loads((FIXTURES / f"pull_request.{action}.json").read_text())
    payload["pull_request"]["head"]["ref"] = ref
    payload["pull_request"]["title"] = ref
    # Indented, so that the tests see whether the relay compacts the body.
    (tmp_path / "event.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return payload


# One file per call: NUL-separated arguments, tool name first.
ARGV_RECORDER = """#!/bin/bash
printf '%s\\0' {tool} "$@" >"$(mktemp {argv_dir}/XXXXXX)"
exec {real} "$@"
"""


def write_argv_recorders(bin_dir: Path, argv_dir: Path) -> None:
    """Put a wrapper for each tool first on PATH that saves its arguments in argv_dir."""
    bin_dir.mkdir()
    argv_dir.mkdir()
    for tool in RECORDED_TOOLS:
        real = shutil.which(tool)
        if real is None:
            continue
        wrapper = bin_dir / tool
        wrapper.write_text(
            ARGV_RECORDER.format(
                tool=tool, argv_dir=shlex.quote(str(argv_dir)), real=shlex.quote(real)
            )
        )
        wrapper.chmod(0o755)


def run_relay(tmp_path: Path, url: str, secret: str = SECRET) -> RelayRun:
    """Run the workflow's script as GitHub's runner would, in an empty working directory."""
    script = tmp_path / "relay.sh"
    script.write_text(relay_step()["run"])
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    argv_dir = tmp_path / "argv"
    write_argv_recorders(tmp_path / "bin", argv_dir)

    # Only the variables that the script reads, plus PATH. No proxy variable reaches curl,
    # so its request stays on loopback.
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_RUN_ID": RUN_ID,
        "GITHUB_RUN_ATTEMPT": RUN_ATTEMPT,
        "RUNNER_TEMP": str(runner_temp),
        "PREVIEWS_BRIDGE_URL": url,
        "PREVIEWS_WEBHOOK_SECRET": secret,
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-euo", "pipefail", str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )

    argv = [path.read_text().removesuffix("\0").split("\0") for path in argv_dir.iterdir()]
    leftovers = sorted([*workdir.iterdir(), *runner_temp.iterdir()])
    return RelayRun(result.returncode, result.stdout, result.stderr, argv, leftovers)


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    fake = FakeBridge(statuses=[HTTPStatus.ACCEPTED])

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1, so that curl's "Expect: 100-continue" gets a response without a delay.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fake.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
            status = fake.statuses.pop(0) if len(fake.statuses) > 1 else fake.statuses[0]
            response_body = json.dumps({"status": status.phrase}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(response_body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(response_body)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/github"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


def unused_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Static checks on the workflow file.


def test_workflow_triggers_on_pull_request_only():
    workflow = load_workflow()

    assert set(workflow["on"]) == {"pull_request"}
    assert sorted(workflow["on"]["pull_request"]["types"]) == sorted(ACTIONS)


def test_workflow_permissions_empty():
    workflow = load_workflow()

    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert job.get("permissions", {}) == {}, f"job {name} asks for permissions"


def test_workflow_expressions_outside_shell():
    # GitHub evaluates these to plain values, and none of them reaches a shell as text.
    for path, text in strings_with_paths(load_workflow()):
        if "${{" in text:
            in_env = len(path) >= 2 and path[-2] == "env"
            allowed = in_env or path[-1] == "if" or path[-2:] == ("concurrency", "group")
            assert allowed, f"expression at {'.'.join(path)}"


def test_workflow_run_scripts_have_no_expression():
    for name, job in load_workflow()["jobs"].items():
        for index, step in enumerate(job["steps"]):
            assert "${{" not in step.get("run", ""), f"job {name}, step {index}"


def test_workflow_actions_pinned_and_no_checkout():
    for job in load_workflow()["jobs"].values():
        for step in job["steps"]:
            action = step.get("uses")
            if action is None:
                continue
            assert re.fullmatch(r"[^@\s]+@[0-9a-f]{40}", action), f"{action} is not pinned by SHA"
            assert not action.startswith("actions/checkout@"), "the relay checks out no code"


def test_workflow_step_gets_secrets_from_env():
    step = relay_step()

    assert step["shell"] == "bash"
    assert step["env"] == {
        "PREVIEWS_BRIDGE_URL": "${{ secrets.PREVIEWS_BRIDGE_URL }}",
        "PREVIEWS_WEBHOOK_SECRET": "${{ secrets.PREVIEWS_WEBHOOK_SECRET }}",
    }


def test_workflow_script_never_traces():
    script = relay_step()["run"]

    assert not re.search(r"set\s+(-\w*x|-o\s+xtrace)", script)
    assert "xtrace" not in script


def test_workflow_skips_forks():
    job = load_workflow()["jobs"]["relay"]

    assert (
        job["if"]
        == "github.event.pull_request.head.repo.id == github.event.pull_request.base.repo.id"
    )


# The script, run against a local HTTP server.


@needs_tools
@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_relay_delivers_hostile_ref(tmp_path, bridge, ref):
    event = event_with_ref(tmp_path, "opened", ref)

    run = run_relay(tmp_path, bridge.url)

    assert run.returncode == 0, run.stdout + run.stderr
    assert len(bridge.deliveries) == 1
    delivery = bridge.deliveries[0]
    assert delivery.path == "/webhooks/github"
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["X-GitHub-Event"] == "pull_request"
    assert delivery.headers["X-GitHub-Delivery"] == DELIVERY
    assert github.signature_is_valid(
        SECRET.encode(), delivery.body, delivery.headers["X-Hub-Signature-256"]
    )
    assert json.loads(delivery.body) == event
    parsed = github.parse_pull_request(json.loads(delivery.body), DELIVERY)
    assert isinstance(parsed, PullRequestEvent)
    assert parsed.request.ref == ref
    assert SECRET not in run.stdout + run.stderr
    assert run.leftovers == [], "a command ran, or the script left files behind"


@needs_tools
def test_relay_signature_rejected_with_wrong_secret(tmp_path, bridge):
    event_with_ref(tmp_path, "opened", "changes")

    run = run_relay(tmp_path, bridge.url)

    assert run.returncode == 0, run.stdout + run.stderr
    delivery = bridge.deliveries[0]
    header = delivery.headers["X-Hub-Signature-256"]
    assert not github.signature_is_valid(b"another secret of 16+ bytes", delivery.body, header)
    assert not github.signature_is_valid(SECRET.encode(), delivery.body + b" ", header)


@needs_tools
def test_relay_compacts_body(tmp_path, bridge):
    event_with_ref(tmp_path, "opened", "changes")

    run = run_relay(tmp_path, bridge.url)

    assert run.returncode == 0, run.stdout + run.stderr
    body = bridge.deliveries[0].body
    assert b"\n  " not in body
    assert body.count(b"\n") == 1


@needs_tools
@pytest.mark.parametrize("action", ACTIONS)
def test_relay_forwards_each_action(tmp_path, bridge, action):
    event_with_ref(tmp_path, action, "changes")

    run = run_relay(tmp_path, bridge.url)

    assert run.returncode == 0, run.stdout + run.stderr
    parsed = github.parse_pull_request(json.loads(bridge.deliveries[0].body), DELIVERY)
    assert isinstance(parsed, PullRequestEvent)
    assert parsed.request.action == ("cleanup" if action == "closed" else "deploy")
    assert f"pull_request event ({action}, pull request #2)" in run.stdout


@needs_tools
def test_relay_secret_not_in_output_or_argv(tmp_path, bridge):
    event_with_ref(tmp_path, "opened", "changes")

    run = run_relay(tmp_path, bridge.url)

    assert run.returncode == 0, run.stdout + run.stderr
    assert SECRET not in run.stdout
    assert SECRET not in run.stderr
    for argv in run.argv:
        assert SECRET not in " ".join(argv), f"secret in the arguments of {argv[0]}"
        assert bridge.url not in " ".join(argv), f"bridge URL in the arguments of {argv[0]}"
    assert {argv[0] for argv in run.argv} == {"jq", "python3", "curl"}


@needs_tools
def test_relay_fails_on_401(tmp_path, bridge):
    bridge.statuses = [HTTPStatus.UNAUTHORIZED]
    event_with_ref(tmp_path, "opened", "changes")

    run = run_relay(tmp_path, bridge.url)

    assert run.returncode != 0
    assert len(bridge.deliveries) == 1, "a 401 must not be retried"
    assert "Unauthorized" in run.stdout
    assert "HTTP status: 401" in run.stdout
    assert SECRET not in run.stdout + run.stderr
    assert run.leftovers == []


@needs_tools
def test_relay_retries_503(tmp_path, bridge):
    bridge.statuses = [HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.ACCEPTED]
    event_with_ref(tmp_path, "opened", "changes")

    run = run_relay(tmp_path, bridge.url)

    assert run.returncode == 0, run.stdout + run.stderr
    assert len(bridge.deliveries) == 2
    first, second = bridge.deliveries
    assert first.body == second.body
    assert first.headers["X-GitHub-Delivery"] == second.headers["X-GitHub-Delivery"]
    assert first.headers["X-Hub-Signature-256"] == second.headers["X-Hub-Signature-256"]


@needs_tools
def test_relay_fails_when_unreachable(tmp_path):
    event_with_ref(tmp_path, "opened", "changes")
    url = f"http://127.0.0.1:{unused_loopback_port()}/webhooks/github"

    # curl retries a refused connection 3 times, 1, 2 and 4 seconds apart: about 7 seconds.
    run = run_relay(tmp_path, url)

    assert run.returncode != 0
    assert "curl: (7)" in run.stderr
    assert run.leftovers == []


@needs_tools
@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("http://127.0.0.1:9/webhooks/github", ""),
        ("", SECRET),
        ("file:///etc/passwd", SECRET),
        ('http://127.0.0.1:9/x"\nurl = "http://127.0.0.1:9/y', SECRET),
        ("http://127.0.0.1:9/x y", SECRET),
    ],
    ids=["empty-secret", "empty-url", "file-url", "config-injection", "space-in-url"],
)
def test_relay_rejects_invalid_settings(tmp_path, url, secret):
    event_with_ref(tmp_path, "opened", "changes")

    run = run_relay(tmp_path, url, secret=secret)

    assert run.returncode == 1
    assert run.stdout.startswith("::error::secret PREVIEWS_")
    assert not [argv for argv in run.argv if argv[0] == "curl"], "curl ran"
    if url:
        assert url not in run.stdout + run.stderr


@pytest.fixture
def real_bridge(tmp_path):
    """The bridge app itself, served by uvicorn on a loopback port, with a recording launcher."""
    import uvicorn

    from bridge.app import create_app
    from bridge.queue import RunQueue
    from bridge.settings import Settings
    from tests.unit.fakes import Launcher

    settings = Settings(webhook_secret=SECRET, data_dir=tmp_path / "data")
    launcher = Launcher()
    queue = RunQueue(settings, launcher=launcher)
    port = unused_loopback_port()
    config = uvicorn.Config(
        create_app(settings, queue=queue), host="127.0.0.1", port=port, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    yield f"http://127.0.0.1:{port}/webhooks/github", queue, launcher
    server.should_exit = True
    thread.join(10)


@needs_tools
@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_real_bridge_accepts_the_relayed_hostile_ref(tmp_path, real_bridge, ref):
    url, queue, launcher = real_bridge
    event = event_with_ref(tmp_path, "opened", ref)

    run = run_relay(tmp_path, url)

    assert run.returncode == 0, run.stdout + run.stderr
    assert '"status":"accepted"' in run.stdout + run.stderr
    wait_for(queue.idle)
    [call] = launcher.calls
    assert (call.action, call.number) == ("deploy", event["pull_request"]["number"])
    assert call.ref == ref
    assert queue.intake.pending() == []
    assert run.leftovers == [], "a command ran, or the script left files behind"
