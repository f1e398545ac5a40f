"""GitLabReporter against a local fake of the GitLab API."""

import json
import logging
import time

import pytest

from bridge.report import GitLabReporter, PreviewReport
from bridge.report.comment import marker
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.network import loopback_only  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.usefixtures("loopback_only")

TOKEN = "glpat-fakeToken0123456789ab"
LOGIN = "previews-bot"
PROJECT = "group/sub/demo"
PROJECT_ID = 42
ENCODED = "group%2Fsub%2Fdemo"
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "4f1b2c3d4e5f60718293a4b5c6d7e8f901234567"
PREVIEW_TOKEN = "previewAccessToken9f8e7d6c5b4a"
NAME = "pr-previews/demo-pr3"


def preview(sha=SHA1, **overrides):
    fields = {
        "repository": PROJECT,
        "number": 3,
        "sha": sha,
        "preview_id": "demo-pr3",
        "urls": {"web": "https://pr-3.previews.test/"},
        "log_url": f"https://previews.example.test/runs/{sha[:8]}/log",
        "run": f"run-{sha[:8]}",
    }
    fields.update(overrides)
    return PreviewReport(**fields)


@pytest.fixture
def gitlab():
    fake = FakeGitLab(
        tokens={TOKEN: LOGIN},
        projects={PROJECT: PROJECT_ID},
        merge_requests={(PROJECT_ID, 3)},
        commits={SHA1, SHA2},
    )
    with fake:
        yield fake


@pytest.fixture
def reporter(gitlab):
    with GitLabReporter(token=TOKEN, base_url=gitlab.url, timeout=5) as client:
        yield client


def paths(fake):
    return [call.target for call in fake.calls]


def only_note(gitlab):
    notes = [n for n in gitlab.notes_on(PROJECT_ID, 3) if not n["system"]]
    assert len(notes) == 1, notes
    return notes[0]


def states(gitlab):
    return [(s["sha"], s["status"]) for s in gitlab.statuses]


def test_gitlab_open_reports_in_order(gitlab, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)

    note = only_note(gitlab)
    assert paths(gitlab) == [
        f"POST /api/v4/projects/{ENCODED}/statuses/{SHA1}",
        "GET /api/v4/user",
        f"GET /api/v4/projects/{ENCODED}/merge_requests/3/notes",
        f"POST /api/v4/projects/{ENCODED}/merge_requests/3/notes",
        f"POST /api/v4/projects/{ENCODED}/statuses/{SHA1}",
        f"PUT /api/v4/projects/{ENCODED}/merge_requests/3/notes/{note['id']}",
    ]


def test_gitlab_open_statuses(gitlab, reporter):
    reporter.deploy_started(preview())
    running_target = gitlab.statuses[0]["target_url"]
    reporter.deploy_finished(preview(), succeeded=True)

    (status,) = gitlab.statuses
    assert running_target == preview().log_url
    assert status["status"] == "success"
    assert status["name"] == NAME
    assert status["target_url"] == "https://pr-3.previews.test/"
    started, finished = gitlab.calls_to("POST", rf"/api/v4/projects/{ENCODED}/statuses/{SHA1}")
    assert started.body["state"] == "running"
    assert finished.body["state"] == "success"


def test_gitlab_private_token_header(gitlab, reporter):
    reporter.deploy_started(preview())

    for call in gitlab.calls:
        assert call.headers["private-token"] == TOKEN
        assert "authorization" not in call.headers


def test_gitlab_numeric_project_id(gitlab):
    with GitLabReporter(token=TOKEN, base_url=gitlab.url, timeout=5) as reporter:
        reporter.deploy_started(preview(repository=str(PROJECT_ID)))

    assert paths(gitlab)[0] == f"POST /api/v4/projects/{PROJECT_ID}/statuses/{SHA1}"
    assert states(gitlab) == [(SHA1, "running")]


def test_gitlab_failed_deploy(gitlab, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=False)

    assert states(gitlab) == [(SHA1, "failed")]
    assert gitlab.statuses[0]["target_url"] == preview().log_url
    body = only_note(gitlab)["body"]
    assert "failed" in body
    assert preview().log_url in body


def test_gitlab_update_edits_note(gitlab, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    reporter.deploy_started(preview(SHA2))
    reporter.deploy_finished(preview(SHA2), succeeded=True)

    assert len(gitlab.calls_to("POST", rf"/api/v4/projects/{ENCODED}/merge_requests/3/notes")) == 1
    assert (
        len(gitlab.calls_to("PUT", rf"/api/v4/projects/{ENCODED}/merge_requests/3/notes/\d+")) == 3
    )
    assert states(gitlab) == [(SHA1, "success"), (SHA2, "success")]
    assert SHA2[:12] in only_note(gitlab)["body"]


def test_gitlab_close_cancels_status(gitlab, reporter):
    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    reporter.cleanup_finished(preview())

    assert states(gitlab) == [(SHA1, "success"), (SHA1, "canceled")]
    body = only_note(gitlab)["body"]
    assert "removed" in body
    assert "https://pr-3.previews.test/" not in body


def test_gitlab_repeated_state_is_not_an_error(gitlab, reporter, caplog):
    reporter.deploy_started(preview())
    reporter.deploy_started(preview())

    rejected = [c for c in gitlab.calls if c.method == "POST" and "/statuses/" in c.path]
    assert len(rejected) == 2
    assert states(gitlab) == [(SHA1, "running")]
    assert "failed at commit status" not in caplog.text


def test_gitlab_new_instance_finds_note(gitlab, reporter):
    reporter.deploy_started(preview())
    with GitLabReporter(token=TOKEN, base_url=gitlab.url, timeout=5) as restarted:
        restarted.deploy_finished(preview(), succeeded=True)

    assert len(gitlab.calls_to("POST", rf"/api/v4/projects/{ENCODED}/merge_requests/3/notes")) == 1
    assert "is deployed" in only_note(gitlab)["body"]


def test_gitlab_note_on_later_page(gitlab, reporter):
    for index in range(130):
        gitlab.add_note(PROJECT_ID, 3, f"added 1 commit {index}", "someone", system=True)
    existing = gitlab.add_note(PROJECT_ID, 3, marker("demo-pr3") + "\nold", LOGIN)

    reporter.deploy_started(preview())

    assert gitlab.calls_to("POST", rf"/api/v4/projects/{ENCODED}/merge_requests/3/notes") == []
    assert "deploying" in gitlab.notes[existing]["body"]
    listings = gitlab.calls_to("GET", rf"/api/v4/projects/{ENCODED}/merge_requests/3/notes")
    assert [call.query["page"] for call in listings] == [["1"], ["2"]]
    assert all(call.query["sort"] == ["asc"] for call in listings)


def test_gitlab_ignores_copied_marker(gitlab, reporter):
    copied = gitlab.add_note(PROJECT_ID, 3, marker("demo-pr3"), "mallory")

    reporter.deploy_started(preview())

    assert gitlab.notes[copied]["body"] == marker("demo-pr3")
    assert len([n for n in gitlab.notes_on(PROJECT_ID, 3) if n["author"] == LOGIN]) == 1


def test_gitlab_blocked_notes_only(gitlab, reporter):
    reporter.blocked(preview(), "Waiting for approval.")

    assert gitlab.statuses == []
    assert "Waiting for approval." in only_note(gitlab)["body"]


def test_gitlab_no_token_in_calls(gitlab, reporter, caplog):
    caplog.set_level(logging.DEBUG)
    leaky = preview(
        urls={"web": f"https://pr-3.previews.test/?token={PREVIEW_TOKEN}"},
        log_url=f"https://previews.example.test/log?token={PREVIEW_TOKEN}",
    )

    reporter.deploy_started(leaky)
    reporter.deploy_finished(leaky, succeeded=True)
    reporter.cleanup_finished(leaky)

    for call in gitlab.calls:
        text = call.path + json.dumps(call.query) + call.raw_body.decode()
        assert TOKEN not in text
        assert PREVIEW_TOKEN not in text
    assert TOKEN not in caplog.text
    assert PREVIEW_TOKEN not in caplog.text


@pytest.mark.parametrize("status", [500, 401, 404])
def test_gitlab_error_status_does_not_raise(gitlab, reporter, status, caplog):
    gitlab.fail_status = status

    reporter.deploy_started(preview())
    reporter.deploy_finished(preview(), succeeded=True)
    reporter.cleanup_finished(preview())
    reporter.blocked(preview(), "waiting")

    assert f"returned {status}" in caplog.text


def test_gitlab_unknown_project_does_not_raise(gitlab, reporter, caplog):
    reporter.deploy_started(preview(repository="group/other"))

    assert gitlab.statuses == []
    assert "404 Project Not Found" in caplog.text


def test_gitlab_timeout_does_not_raise(gitlab, caplog):
    gitlab.hang_seconds = 10
    with GitLabReporter(token=TOKEN, base_url=gitlab.url, timeout=0.3) as slow:
        started = time.monotonic()
        slow.deploy_started(preview())
        slow.cleanup_finished(preview())
        elapsed = time.monotonic() - started

    assert len(gitlab.calls) == 2
    assert elapsed < 3
    assert "ReadTimeout" in caplog.text


def test_gitlab_default_base_url():
    with GitLabReporter(token=TOKEN) as reporter:
        assert reporter.base_url == "https://gitlab.com/api/v4"
