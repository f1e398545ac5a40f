"""The trust policy, through the bridge: who deploys at once, who waits for an approval."""

import pytest

from bridge import origin
from tests.unit.webhooks import SHA2, fixture, post, runs

FORK_SHA = "0fe2d7a7a5d7b5d1bb1bf7e8e3e7a2a3c2f1e4d5"


def api(client, path):
    from tests.unit.webhooks import API_TOKEN

    return client.get(path, headers={"Authorization": f"Bearer {API_TOKEN}"})


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("pull_request.opened.fork.json", "another repository"),
        ("pull_request.opened.fork.member.json", "another repository"),
        ("pull_request.opened.head-repo-null.delivery.json", "another repository"),
    ],
)
def test_fork_fixtures_are_blocked(client, queue, launcher, name, reason):
    payload = fixture(name)

    response = post(client, payload)

    assert response.status_code == 200
    assert response.json()["status"] == "blocked"
    assert reason in response.json()["reason"]
    assert runs(queue, launcher) == []
    [preview] = api(client, "/api/previews").json()
    assert preview["status"] == "blocked"
    assert preview["blocked_sha"] == payload["pull_request"]["head"]["sha"]
    assert reason in preview["blocked"]


def test_contributor_is_blocked(client, queue, launcher):
    payload = origin.pull_request_payload(
        "opened", 3, FORK_SHA, "feature", association="CONTRIBUTOR"
    )

    response = post(client, payload)

    assert response.json()["status"] == "blocked"
    assert "author association CONTRIBUTOR is not in the allow list" in response.json()["reason"]
    assert runs(queue, launcher) == []


def test_repository_that_is_a_fork_is_not_a_fork_pull_request(client, queue, launcher):
    response = post(client, fixture("pull_request.opened.repo-is-fork.json"))

    assert response.status_code == 202
    assert [action for action, _, _ in runs(queue, launcher)] == ["deploy"]


@pytest.mark.parametrize("head", ["fork", "deleted"])
def test_label_approves_one_sha_and_a_new_push_is_blocked_again(client, queue, launcher, head):
    opened = origin.pull_request_payload(
        "opened", 4, FORK_SHA, "patch-1", association="NONE", head=head
    )
    assert post(client, opened).json()["status"] == "blocked"

    labeled = origin.pull_request_payload(
        "labeled", 4, FORK_SHA, "patch-1", association="NONE", head=head, label="preview-approved"
    )
    approved = post(client, labeled)
    assert approved.status_code == 202
    assert runs(queue, launcher) == [("deploy", 4, FORK_SHA)]
    # The fake launcher records no artifacts, so nothing shows once the request has run.
    assert api(client, "/api/previews/4").status_code == 404

    pushed = origin.pull_request_payload(
        "synchronize", 4, SHA2, "patch-1", association="NONE", head=head
    )
    response = post(client, pushed)

    assert response.json()["status"] == "blocked"
    assert runs(queue, launcher) == [("deploy", 4, FORK_SHA)]
    assert api(client, "/api/previews/4").json()["blocked_sha"] == SHA2


def test_label_from_someone_outside_the_approvers_is_ignored(settings, queue, launcher):
    from fastapi.testclient import TestClient

    from bridge.app import create_app

    strict = settings.model_copy(update={"approvers": frozenset({"lead"})})
    labeled = origin.pull_request_payload(
        "labeled", 4, FORK_SHA, "patch-1", head="fork", label="preview-approved"
    )
    with TestClient(create_app(strict, queue=queue)) as client:
        response = post(client, labeled)

    assert response.json()["status"] == "ignored"
    assert "not in the approvers list" in response.json()["reason"]
    assert runs(queue, launcher) == []


def test_closing_a_blocked_pull_request_cleans_up_and_unblocks(client, queue, launcher):
    post(client, fixture("pull_request.opened.fork.json"))
    closed = fixture("pull_request.opened.fork.json")
    closed["action"] = "closed"

    response = post(client, closed)

    assert response.status_code == 202
    assert [action for action, _, _ in runs(queue, launcher)] == ["cleanup"]
    assert api(client, "/api/previews").json() == []
