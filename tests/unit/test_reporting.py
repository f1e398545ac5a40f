"""Forge reports through the whole bridge: signed webhooks in, the queue, runs that write
real artifacts, and a fake GitHub API that checks and records every call."""

import json

import pytest
from fastapi.testclient import TestClient

from bridge import origin
from bridge.app import create_app
from bridge.queue import RunQueue
from bridge.report import GitHubReporter
from tests.fakes.github import FakeGitHub
from tests.fakes.network import loopback_only  # noqa: F401 - a fixture, used by name
from tests.unit.fakes import wait_for, write_run
from tests.unit.webhooks import post

pytestmark = pytest.mark.usefixtures("loopback_only")

API_TOKEN = "ghp_fakeApiToken0123456789abcdef"
REPOSITORY = "example/sample-app"
SHA1 = "1" * 40
SHA2 = "2" * 40
SHA3 = "3" * 40
PREVIEW_TOKEN = "PreviewTokenThatMustNeverLeave1234567890"


class ArtifactLauncher:
    """Stands in for the run command: writes each run's artifacts as a real run would,
    failing the deploys of the SHAs in `fail`."""

    def __init__(self, settings, fail=()):
        self.settings = settings
        self.fail = set(fail)
        self.count = 0

    def __call__(self, settings, request, ident):
        self.count += 1
        failed = request.sha in self.fail
        base = f"https://pr-{request.number}.previews.test/"
        facts = {
            "id": settings.preview_id(request.number),
            "number": request.number,
            "action": request.action,
            "sha": request.sha or "",
            "time": f"2026-01-01T00:00:{self.count:02d}.000000Z",
            "log_url": f"{base}_previews/logs/{ident}.txt",
        }
        if request.action == "deploy" and not failed:
            facts["urls"] = {"web": base, "api": f"https://pr-{request.number}-api.previews.test/"}
        write_run(settings.runner_dir, ident, "failed" if failed else "successful", facts)
        return 1 if failed else 0


@pytest.fixture
def github():
    fake = FakeGitHub(
        tokens={API_TOKEN: "previews-bot"},
        repositories={REPOSITORY},
        pulls={(REPOSITORY, 5)},
        commits={SHA1, SHA2, SHA3},
    )
    with fake:
        yield fake


@pytest.fixture
def bridge(settings, github):
    launcher = ArtifactLauncher(settings, fail={SHA2})
    queue = RunQueue(settings, launcher=launcher)
    reporter = GitHubReporter(token=API_TOKEN, base_url=github.url, timeout=5)
    with TestClient(create_app(settings, queue=queue, reporter=reporter)) as client:
        yield client, queue
    reporter.close()


def deliver(client, queue, github, action, sha, expected_calls):
    payload = origin.pull_request_payload(action, 5, sha, "feature")
    assert post(client, payload).status_code == 202
    wait_for(queue.idle)
    wait_for(lambda: len(github.calls) >= expected_calls)


def statuses(github):
    return [
        (call.body["state"], call.body.get("environment_url", ""), call.body.get("log_url", ""))
        for call in github.calls_to("POST", r"/repos/[^/]+/[^/]+/deployments/\d+/statuses")
    ]


def test_open_fail_update_close_reports_in_order(bridge, github):
    client, queue = bridge

    deliver(client, queue, github, "opened", SHA1, 7)
    deliver(client, queue, github, "synchronize", SHA2, 12)
    deliver(client, queue, github, "synchronize", SHA3, 17)
    deliver(client, queue, github, "closed", SHA3, 20)

    states = [state for state, _, _ in statuses(github)]
    assert states[:6] == [
        "in_progress",
        "success",
        "in_progress",
        "failure",
        "in_progress",
        "success",
    ]
    assert set(states[6:]) == {"inactive"}
    _, url, log = statuses(github)[1]
    assert url == "https://pr-5.previews.test/"
    assert log.startswith("https://pr-5.previews.test/_previews/logs/")
    _, url, log = statuses(github)[3]
    assert url == ""
    assert "_deploy_" in log
    assert [deployment["ref"] for deployment in github.deployments.values()] == [SHA1, SHA2, SHA3]


def test_one_comment_edited_never_duplicated(bridge, github):
    client, queue = bridge

    deliver(client, queue, github, "opened", SHA1, 7)
    deliver(client, queue, github, "synchronize", SHA3, 12)
    deliver(client, queue, github, "closed", SHA3, 15)
    # The fake records a call before it applies it, so wait for the edit itself.
    wait_for(lambda: "removed" in next(iter(github.comments.values()))["body"])

    [comment] = github.comments.values()
    assert len(github.calls_to("POST", r"/repos/[^/]+/[^/]+/issues/\d+/comments")) == 1
    assert github.calls_to("PATCH", r"/repos/[^/]+/[^/]+/issues/comments/\d+")
    assert "removed" in comment["body"]
    assert "_previews/logs" not in comment["body"]


def test_no_token_in_any_call(bridge, github, settings):
    client, queue = bridge
    tokens = settings.data_dir / "tokens"
    tokens.mkdir()
    (tokens / "demo-pr5").write_text(PREVIEW_TOKEN)

    deliver(client, queue, github, "opened", SHA1, 7)
    deliver(client, queue, github, "closed", SHA1, 10)

    for call in github.calls:
        text = call.target + json.dumps(call.body)
        assert PREVIEW_TOKEN not in text
        assert API_TOKEN not in text
        assert "token=" not in text


def test_blocked_pull_request_gets_a_comment_and_no_deployment(bridge, github):
    client, _ = bridge
    payload = origin.pull_request_payload("opened", 5, SHA1, "patch", head="fork")

    assert post(client, payload).json()["status"] == "blocked"
    wait_for(lambda: github.comments)

    [comment] = github.comments.values()
    assert "another repository" in comment["body"]
    assert github.deployments == {}
