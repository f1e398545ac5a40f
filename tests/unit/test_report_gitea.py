"""GiteaReporter against a local fake of the Gitea API."""

import json
import logging
import time

import pytest

from bridge.report import GiteaReporter, PreviewReport
from bridge.report.comment import marker
from tests.fakes.gitea import FakeGitea
from tests.fakes.network import loopback_only  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.usefixtures("loopback_only")

TOKEN = "gitea0123456789abcdef0123456789abcdef0123"
LOGIN = "previews-bot"
REPOSITORY = "octo/demo"
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "4f1b2c3d4e5f60718293a4b5c6d7e8f901234567"
PREVIEW_TOKEN = "previewAccessToken9f8e7d6c5b4a"
CONTEXT = "pr-previews/demo-pr2"


def preview(sha=SHA1, **overrides):
    fields = {
        "repository": REPOSITORY,
        "number": 2,
        "sha": sha,
        "preview_id": "demo-pr2",
        "urls": {"web": "https://pr-2.previews.test/", "chat": "https://pr-2-chat.previews.test/"},
        "log_url": f"https://previews.example.test/runs/{sha[:8]}/log",
        "run": f"run-{sha[:8]}",
    }
    fields.update(overrides)
    return PreviewReport(**fields)


@pytest.fixture
def gitea():
    fake = FakeGitea(
        tokens={TOKEN: LOGIN},
        repositories={REPOSITORY},
        pulls={(REPOSITORY, 2)},
        commits={SHA1, SHA2},
    )
    with fake:
        yield fake


@pytest.fixture
def reporter(gitea):
    with GiteaReporter(token=TOKEN, base_url=gitea.url, timeout=5) as client:
        yield client


def paths(fake):
    return [call.target for call in fake.calls]


def only_comment(gitea):
    comments = gitea.comments_on(REPOSITORY, 2)
    assert len(comments) == 1, comments
    return comments[0]


def test_gitea_open_reports_in_order(gitea, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)

    comment = only_comment(gitea)
    assert paths(gitea) == [
        f"POST /api/v1/repos/octo/demo/statuses/{SHA1}",
        "GET /api/v1/user",
        "GET /api/v1/repos/octo/demo/issues/2/comments",
        "POST /api/v1/repos/octo/demo/issues/2/comments",
        f"POST /api/v1/repos/octo/demo/statuses/{SHA1}",
        f"PATCH /api/v1/repos/octo/demo/issues/comments/{comment['id']}",
    ]


def test_gitea_open_statuses(gitea, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)

    started, finished = gitea.statuses
    assert started["state"] == "pending"
    assert started["context"] == CONTEXT
    assert started["target_url"] == preview().log_url
    assert finished["state"] == "success"
    assert finished["context"] == CONTEXT
    assert finished["target_url"] == "https://pr-2.previews.test/"
    assert finished["sha"] == SHA1


def test_gitea_authorization_header(gitea, reporter):
    reporter.deploy_started(preview())

    for call in gitea.calls:
        assert call.headers["authorization"] == f"token {TOKEN}"


def test_gitea_open_comment(gitea, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)

    body = only_comment(gitea)["body"]
    assert body.startswith(marker("demo-pr2"))
    assert "| web | https://pr-2.previews.test/ |" in body
    assert "| chat | https://pr-2-chat.previews.test/ |" in body
    assert SHA1[:12] in body


def test_gitea_failed_deploy(gitea, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=False)

    assert [s["state"] for s in gitea.statuses] == ["pending", "failure"]
    assert gitea.statuses[-1]["target_url"] == preview().log_url
    body = only_comment(gitea)["body"]
    assert "failed" in body
    assert preview().log_url in body


def test_gitea_update_edits_comment(gitea, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    reporter.deploy_started(preview(SHA2))
    reporter.deploy_finished(preview(SHA2), succeeded=True)

    assert len(gitea.calls_to("POST", r"/api/v1/repos/octo/demo/issues/2/comments")) == 1
    assert len(gitea.calls_to("PATCH", r"/api/v1/repos/octo/demo/issues/comments/\d+")) == 3
    assert [(s["sha"], s["state"]) for s in gitea.statuses[2:]] == [
        (SHA2, "pending"),
        (SHA2, "success"),
    ]
    assert SHA2[:12] in only_comment(gitea)["body"]


def test_gitea_close_edits_comment_only(gitea, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    statuses_before = list(gitea.statuses)

    reporter.cleanup_finished(preview())

    assert gitea.statuses == statuses_before
    body = only_comment(gitea)["body"]
    assert "removed" in body
    assert "https://pr-2.previews.test/" not in body


def test_gitea_new_instance_finds_comment(gitea, reporter):
    reporter.deploy_started(preview())
    with GiteaReporter(token=TOKEN, base_url=gitea.url, timeout=5) as restarted:
        restarted.deploy_finished(preview(), succeeded=True)

    assert len(gitea.calls_to("POST", r"/api/v1/repos/octo/demo/issues/2/comments")) == 1
    assert "is deployed" in only_comment(gitea)["body"]


def test_gitea_ignores_copied_marker(gitea, reporter):
    copied = gitea.add_comment(REPOSITORY, 2, marker("demo-pr2"), "mallory")

    reporter.deploy_started(preview())

    assert gitea.comments[copied]["body"] == marker("demo-pr2")
    assert len([c for c in gitea.comments_on(REPOSITORY, 2) if c["user"] == LOGIN]) == 1


def test_gitea_blocked_comments_only(gitea, reporter):
    reporter.blocked(preview(), "Waiting for approval.")

    assert gitea.statuses == []
    assert "Waiting for approval." in only_comment(gitea)["body"]


def test_gitea_no_token_in_calls(gitea, reporter, caplog):
    caplog.set_level(logging.DEBUG)
    leaky = preview(
        urls={"web": f"https://pr-2.previews.test/?token={PREVIEW_TOKEN}"},
        log_url=f"https://previews.example.test/log?token={PREVIEW_TOKEN}",
    )

    reporter.deploy_started(leaky)
    reporter.deploy_finished(leaky, succeeded=True)
    reporter.cleanup_finished(leaky)

    for call in gitea.calls:
        text = call.path + json.dumps(call.query) + call.raw_body.decode()
        assert TOKEN not in text
        assert PREVIEW_TOKEN not in text
    assert TOKEN not in caplog.text
    assert PREVIEW_TOKEN not in caplog.text


@pytest.mark.parametrize("status", [500, 401, 404])
def test_gitea_error_status_does_not_raise(gitea, reporter, status, caplog):
    gitea.fail_status = status

    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=False)
    reporter.cleanup_finished(preview())
    reporter.blocked(preview(), "waiting")

    assert f"returned {status}" in caplog.text


def test_gitea_wrong_token_does_not_raise(gitea, caplog):
    with GiteaReporter(token="wrong", base_url=gitea.url, timeout=5) as reporter:
        reporter.deploy_started(preview())

    assert gitea.statuses == []
    assert "returned 401" in caplog.text


def test_gitea_timeout_does_not_raise(gitea, caplog):
    gitea.hang_seconds = 10
    with GiteaReporter(token=TOKEN, base_url=gitea.url, timeout=0.3) as slow:
        started = time.monotonic()
        slow.deploy_started(preview())
        slow.deploy_finished(preview(), succeeded=True)
        slow.cleanup_finished(preview())
        elapsed = time.monotonic() - started

    assert len(gitea.calls) == 3
    assert elapsed < 3
    assert "ReadTimeout" in caplog.text


def test_gitea_needs_token():
    with pytest.raises(ValueError, match="token is empty"):
        GiteaReporter(token="", base_url="http://127.0.0.1:9/api/v1")
