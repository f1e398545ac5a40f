"""GitHubReporter against a local fake of the GitHub REST API."""

import json
import logging
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.report import GitHubApp, GitHubReporter, PreviewReport
from bridge.report.comment import marker
from tests.fakes.github import FakeApp, FakeGitHub
from tests.fakes.network import loopback_only  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.usefixtures("loopback_only")

TOKEN = "ghp_fakeApiToken0123456789abcdef"
LOGIN = "previews-bot"
REPOSITORY = "octo/demo"
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "4f1b2c3d4e5f60718293a4b5c6d7e8f901234567"
PREVIEW_TOKEN = "previewAccessToken9f8e7d6c5b4a"


def preview(sha=SHA1, run="20260101T000000000000Z_demo-pr1_deploy_abc123", **overrides):
    fields = {
        "repository": REPOSITORY,
        "number": 1,
        "sha": sha,
        "preview_id": "demo-pr1",
        "urls": {
            "web": "https://pr-1.previews.test/",
            "api": "https://pr-1-api.previews.test/",
        },
        "log_url": f"https://previews.example.test/runs/{run}/log",
        "run": run,
    }
    fields.update(overrides)
    return PreviewReport(**fields)


@pytest.fixture
def github():
    fake = FakeGitHub(
        tokens={TOKEN: LOGIN},
        repositories={REPOSITORY},
        pulls={(REPOSITORY, 1)},
        commits={SHA1, SHA2},
    )
    with fake:
        yield fake


@pytest.fixture
def reporter(github):
    with GitHubReporter(token=TOKEN, base_url=github.url, timeout=5) as client:
        yield client


def paths(fake):
    return [call.target for call in fake.calls]


def only_deployment(github):
    (deployment,) = github.deployments.values()
    return deployment


def test_github_open_reports_in_order(github, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)

    deployment = only_deployment(github)
    comment = only_comment(github)
    assert paths(github) == [
        "POST /repos/octo/demo/deployments",
        f"POST /repos/octo/demo/deployments/{deployment['id']}/statuses",
        "GET /user",
        "GET /repos/octo/demo/issues/1/comments",
        "POST /repos/octo/demo/issues/1/comments",
        f"POST /repos/octo/demo/deployments/{deployment['id']}/statuses",
        f"PATCH /repos/octo/demo/issues/comments/{comment['id']}",
    ]


def test_github_deployment_body(github, reporter):
    reporter.deploy_started(preview())

    (create,) = github.calls_to("POST", r"/repos/octo/demo/deployments")
    assert create.body == {
        "ref": SHA1,
        "environment": "demo-pr1",
        "description": "Preview demo-pr1",
        "auto_merge": False,
        "required_contexts": [],
        "transient_environment": True,
        "production_environment": False,
    }


def test_github_open_statuses(github, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)

    deployment = only_deployment(github)
    started, finished = github.statuses[deployment["id"]]
    assert started["state"] == "in_progress"
    assert started["log_url"] == preview().log_url
    assert finished["state"] == "success"
    assert finished["environment_url"] == "https://pr-1.previews.test/"
    assert finished["log_url"] == preview().log_url


def test_github_request_headers(github, reporter):
    reporter.deploy_started(preview())

    for call in github.calls:
        assert call.headers["authorization"] == f"Bearer {TOKEN}"
        assert call.headers["accept"] == "application/vnd.github+json"
        assert call.headers["x-github-api-version"] == "2022-11-28"


def only_comment(github):
    comments = github.comments_on(REPOSITORY, 1)
    assert len(comments) == 1, comments
    return comments[0]


def test_github_open_comment(github, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)

    body = only_comment(github)["body"]
    assert body.startswith(marker("demo-pr1"))
    assert "is deployed" in body
    assert "| web | https://pr-1.previews.test/ |" in body
    assert "| api | https://pr-1-api.previews.test/ |" in body
    assert SHA1[:12] in body
    assert preview().log_url in body


def test_github_failed_deploy(github, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=False)

    deployment = only_deployment(github)
    assert github.states(deployment["id"]) == ["in_progress", "failure"]
    failure = github.statuses[deployment["id"]][-1]
    assert failure["log_url"] == preview().log_url
    assert "environment_url" not in failure
    body = only_comment(github)["body"]
    assert "failed" in body
    assert preview().log_url in body
    assert "https://pr-1.previews.test/" not in body


def test_github_update_edits_comment(github, reporter):
    second_run = "20260101T010000000000Z_demo-pr1_deploy_def456"
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    reporter.deploy_started(preview(SHA2, run=second_run))
    reporter.deploy_finished(preview(SHA2, run=second_run), succeeded=True)

    assert len(github.calls_to("POST", r"/repos/octo/demo/issues/1/comments")) == 1
    assert len(github.calls_to("PATCH", r"/repos/octo/demo/issues/comments/\d+")) == 3
    body = only_comment(github)["body"]
    assert SHA2[:12] in body
    assert SHA1[:12] not in body
    assert second_run in body


def test_github_update_deactivates_previous(github, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    reporter.deploy_started(preview(SHA2))
    reporter.deploy_finished(preview(SHA2), succeeded=True)

    first, second = sorted(github.deployments)
    assert github.deployments[second]["sha"] == SHA2
    assert github.states(first) == ["in_progress", "success", "inactive"]
    assert github.states(second) == ["in_progress", "success"]


def test_github_close_marks_inactive(github, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=False)
    reporter.deploy_started(preview(SHA2))
    reporter.deploy_finished(preview(SHA2), succeeded=True)
    reporter.cleanup_finished(preview(SHA2))

    for deployment_id in github.deployments:
        assert github.states(deployment_id)[-1] == "inactive"
    inactive_posts = [
        call
        for call in github.calls_to("POST", r"/repos/octo/demo/deployments/\d+/statuses")
        if call.body["state"] == "inactive"
    ]
    assert len(inactive_posts) == 2
    body = only_comment(github)["body"]
    assert "removed" in body
    assert "https://pr-1.previews.test/" not in body


def test_github_close_twice_posts_nothing_new(github, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    reporter.cleanup_finished(preview())
    posts_before = len(github.calls_to("POST", r"/repos/octo/demo/deployments/\d+/statuses"))

    reporter.cleanup_finished(preview())

    assert (
        len(github.calls_to("POST", r"/repos/octo/demo/deployments/\d+/statuses")) == posts_before
    )


def test_github_new_instance_finds_comment(github, reporter):
    reporter.deploy_started(preview())
    with GitHubReporter(token=TOKEN, base_url=github.url, timeout=5) as restarted:
        restarted.deploy_finished(preview(), succeeded=True)

    assert len(github.deployments) == 1
    assert len(github.calls_to("POST", r"/repos/octo/demo/issues/1/comments")) == 1
    assert "is deployed" in only_comment(github)["body"]


def test_github_finish_without_start_creates_deployment(github, reporter):
    reporter.deploy_finished(preview(), succeeded=True)

    deployment = only_deployment(github)
    assert github.states(deployment["id"]) == ["success"]


def test_github_comment_on_second_page(github, reporter):
    for index in range(150):
        github.add_comment(REPOSITORY, 1, f"review comment {index}", "reviewer")
    existing = github.add_comment(REPOSITORY, 1, marker("demo-pr1") + "\nold", LOGIN)

    reporter.deploy_started(preview())

    assert github.calls_to("POST", r"/repos/octo/demo/issues/1/comments") == []
    assert "deploying" in github.comments[existing]["body"]
    pages = [
        call.query["page"] for call in github.calls_to("GET", r"/repos/octo/demo/issues/1/comments")
    ]
    assert pages == [["1"], ["2"]]


def test_github_ignores_copied_marker(github, reporter):
    copied = github.add_comment(REPOSITORY, 1, marker("demo-pr1") + "\nfake", "mallory")

    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)

    assert github.comments[copied]["body"] == marker("demo-pr1") + "\nfake"
    assert github.calls_to("PATCH", rf"/repos/octo/demo/issues/comments/{copied}") == []
    ours = [c for c in github.comments_on(REPOSITORY, 1) if c["user"] == LOGIN]
    assert len(ours) == 1


def test_github_recreates_deleted_comment(github, reporter):
    reporter.deploy_started(preview())
    github.comments.clear()

    reporter.deploy_finished(preview(), succeeded=True)

    assert "is deployed" in only_comment(github)["body"]


def test_github_blocked_comments_only(github, reporter):
    reporter.blocked(
        preview(), "Fork pull requests wait for a maintainer's approval of @mallory's <b>SHA</b>."
    )

    assert github.deployments == {}
    body = only_comment(github)["body"]
    assert "is not deployed" in body
    assert "<b>" not in body
    assert "@mallory" not in body


def test_github_threads_share_reporter(github, reporter):
    numbers = range(1, 6)
    github.pulls.update((REPOSITORY, number) for number in numbers)

    def lifecycle(number):
        report = preview(number=number, preview_id=f"demo-pr{number}")
        reporter.deploy_started(report)
        reporter.deploy_finished(report, succeeded=True)
        reporter.cleanup_finished(report)

    threads = [threading.Thread(target=lifecycle, args=(number,)) for number in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(github.calls_to("GET", "/user")) >= 1
    for number in numbers:
        (comment,) = github.comments_on(REPOSITORY, number)
        assert comment["body"].startswith(marker(f"demo-pr{number}"))
        assert "removed" in comment["body"]
    for deployment_id in github.deployments:
        assert github.states(deployment_id) == ["in_progress", "success", "inactive"]


def all_sent_text(fake):
    return [call.path + json.dumps(call.query) + call.raw_body.decode() for call in fake.calls]


def test_github_no_token_in_calls(github, reporter, caplog):
    caplog.set_level(logging.DEBUG)
    leaky = preview(
        urls={"web": f"https://pr-1.previews.test/?token={PREVIEW_TOKEN}"},
        log_url=f"https://user:{PREVIEW_TOKEN}@previews.example.test/log?token={PREVIEW_TOKEN}#x",
    )

    reporter.deploy_started(leaky)
    reporter.deploy_finished(leaky, succeeded=True)
    reporter.blocked(leaky, "waiting")
    reporter.cleanup_finished(leaky)

    for text in all_sent_text(github):
        assert TOKEN not in text
        assert PREVIEW_TOKEN not in text
    assert TOKEN not in caplog.text
    assert PREVIEW_TOKEN not in caplog.text
    success = [s for s in github.statuses[only_deployment(github)["id"]] if s["state"] == "success"]
    assert success[0]["environment_url"] == "https://pr-1.previews.test/"


@pytest.mark.parametrize("status", [500, 502, 401, 404, 422])
def test_github_error_status_does_not_raise(github, reporter, status, caplog):
    github.fail_status = status

    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    reporter.deploy_finished(preview(), succeeded=False)
    reporter.cleanup_finished(preview())
    reporter.blocked(preview(), "waiting")

    assert f"returned {status}" in caplog.text
    assert TOKEN not in caplog.text


def test_github_timeout_does_not_raise(github, caplog):
    github.hang_seconds = 10
    with GitHubReporter(token=TOKEN, base_url=github.url, timeout=0.3) as slow:
        started = time.monotonic()
        slow.deploy_started(preview())
        slow.deploy_finished(preview(), succeeded=True)
        slow.cleanup_finished(preview())
        slow.blocked(preview(), "waiting")
        elapsed = time.monotonic() - started

    # One timed-out call per report: the rest of a report is skipped.
    assert len(github.calls) == 4
    assert elapsed < 4
    assert "ReadTimeout" in caplog.text


def test_github_unreachable_does_not_raise(caplog):
    with FakeGitHub() as stopped_later:
        url = stopped_later.url
    with GitHubReporter(token=TOKEN, base_url=url, timeout=1) as reporter:
        reporter.deploy_started(preview())

    assert "forge unreachable" in caplog.text


def test_github_invalid_preview_does_not_raise(github, reporter, caplog):
    reporter.deploy_started(preview(sha="not-a-sha", repository="octo/demo/extra"))

    assert github.deployments == {}
    assert "sha must be" in caplog.text


def test_github_needs_one_credential():
    with pytest.raises(ValueError, match="either a token or a GitHub App"):
        GitHubReporter(base_url="http://127.0.0.1:9")
    app = GitHubApp(app_id="1", private_key=private_key_pem(new_key()), installation_id=1)
    with pytest.raises(ValueError, match="either a token or a GitHub App"):
        GitHubReporter(token=TOKEN, app=app, base_url="http://127.0.0.1:9")


def test_github_default_base_url():
    # Constructing the client opens no connection; the loopback guard would fail the test.
    with GitHubReporter(token=TOKEN) as reporter:
        assert reporter.base_url == "https://api.github.com"


# GitHub App authentication.

APP_ID = "123456"
INSTALLATION_ID = 987


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def app_key():
    return new_key()


def app_github(app_key, prefix="", token_lifetime=3600.0):
    app = FakeApp(APP_ID, app_key.public_key(), INSTALLATION_ID, token_lifetime=token_lifetime)
    fake = FakeGitHub(
        prefix=prefix,
        app=app,
        repositories={REPOSITORY},
        pulls={(REPOSITORY, 1)},
        commits={SHA1, SHA2},
    )
    return fake, app


def app_reporter(fake, key):
    app = GitHubApp(
        app_id=APP_ID, private_key=private_key_pem(key), installation_id=INSTALLATION_ID
    )
    return GitHubReporter(app=app, base_url=fake.url, timeout=5)


def test_github_app_flow(app_key):
    fake, app = app_github(app_key)
    with fake, app_reporter(fake, app_key) as reporter:
        reporter.deploy_started(preview())
        reporter.deploy_finished(preview(), succeeded=True)

    assert paths(fake)[0] == f"POST /app/installations/{INSTALLATION_ID}/access_tokens"
    (installation_token,) = app.issued_tokens
    for call in fake.calls:
        if call.path.startswith("/repos/"):
            assert call.headers["authorization"] == f"Bearer {installation_token}"
    assert "GET /app" in paths(fake)
    assert "GET /user" not in paths(fake)
    assert only_comment(fake)["user"] == "previews-app[bot]"
    assert fake.states(only_deployment(fake)["id"]) == ["in_progress", "success"]


def test_github_app_jwt_claims(app_key):
    fake, app = app_github(app_key)
    with fake, app_reporter(fake, app_key) as reporter:
        reporter.deploy_started(preview())

    assert app.jwts
    for claims in app.jwts:
        assert claims["iss"] == APP_ID
        assert claims["iat"] <= time.time() - 59
        assert claims["exp"] - claims["iat"] <= 660


def test_github_app_token_cached(app_key):
    fake, app = app_github(app_key)
    with fake, app_reporter(fake, app_key) as reporter:
        for _ in range(3):
            reporter.deploy_started(preview())
            reporter.deploy_finished(preview(), succeeded=True)

    assert len(app.issued_tokens) == 1


def test_github_app_token_renewed_near_expiry(app_key):
    # Tokens that expire within the renewal margin are never reused.
    fake, app = app_github(app_key, token_lifetime=120)
    with fake, app_reporter(fake, app_key) as reporter:
        reporter.deploy_started(preview())

    repository_calls = [call for call in fake.calls if call.path.startswith("/repos/")]
    assert len(app.issued_tokens) == len(repository_calls)


def test_github_app_token_renewed_after_401(app_key):
    fake, app = app_github(app_key)
    with fake, app_reporter(fake, app_key) as reporter:
        reporter.deploy_started(preview())
        fake._installation_tokens.clear()  # GitHub revoked the token
        reporter.deploy_finished(preview(), succeeded=True)

    assert len(app.issued_tokens) == 2
    assert fake.states(only_deployment(fake)["id"]) == ["in_progress", "success"]


def test_github_app_wrong_key_does_not_raise(app_key, caplog):
    fake, app = app_github(app_key)
    with fake, app_reporter(fake, new_key()) as reporter:
        reporter.deploy_started(preview())

    assert app.issued_tokens == []
    assert fake.deployments == {}
    assert "returned 401" in caplog.text


def test_github_app_enterprise_api_root(app_key):
    fake, app = app_github(app_key, prefix="/api/v3")
    with fake, app_reporter(fake, app_key) as reporter:
        reporter.deploy_started(preview())

    assert paths(fake)[0] == f"POST /api/v3/app/installations/{INSTALLATION_ID}/access_tokens"
    assert len(app.issued_tokens) == 1
    assert len(fake.deployments) == 1


def test_github_app_no_secret_in_calls(app_key, caplog):
    caplog.set_level(logging.DEBUG)
    fake, app = app_github(app_key)
    with fake, app_reporter(fake, app_key) as reporter:
        reporter.deploy_started(preview())
        reporter.deploy_finished(preview(), succeeded=True)

    (installation_token,) = app.issued_tokens
    pem_line = private_key_pem(app_key).splitlines()[1]
    for text in all_sent_text(fake):
        assert installation_token not in text
        assert pem_line not in text
    assert installation_token not in caplog.text
