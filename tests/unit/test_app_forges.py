"""The Gitea/Forgejo and GitLab endpoints: the same intake, trust and queue as GitHub's."""

import json
from pathlib import Path

import pytest

from bridge import gitea
from tests.unit.webhooks import SECRET, runs

FIXTURES = Path(__file__).parent.parent / "fixtures"


def load(forge: str, name: str) -> bytes:
    return (FIXTURES / forge / name).read_bytes()


def to_gitea(client, body, event_type, secret=SECRET, forgejo=False, delivery="g-1"):
    prefix = "X-Forgejo" if forgejo else "X-Gitea"
    headers = {
        "Content-Type": "application/json",
        f"{prefix}-Event": event_type.split("_", 1)[0] if event_type != "push" else "push",
        f"{prefix}-Event-Type": event_type,
        f"{prefix}-Delivery": delivery,
        f"{prefix}-Signature": gitea.sign(secret.encode(), body),
    }
    return client.post("/webhooks/gitea", content=body, headers=headers)


def to_gitlab(client, body, token=SECRET, event="Merge Request Hook", delivery="l-1"):
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "Idempotency-Key": delivery,
    }
    return client.post("/webhooks/gitlab", content=body, headers=headers)


def test_gitea_opened_deploys(client, queue, launcher):
    body = load("gitea", "pull_request.opened.json")
    sha = json.loads(body)["pull_request"]["head"]["sha"]

    response = to_gitea(client, body, "pull_request")

    assert response.status_code == 202, response.text
    assert [(action, sha_) for action, _, sha_ in runs(queue, launcher)] == [("deploy", sha)]


def test_forgejo_headers_are_accepted(client, queue, launcher):
    response = to_gitea(
        client, load("gitea", "pull_request.closed.json"), "pull_request", forgejo=True
    )

    assert response.status_code == 202, response.text
    assert [action for action, _, _ in runs(queue, launcher)] == ["cleanup"]


def test_gitea_fork_is_blocked(client, queue, launcher):
    response = to_gitea(client, load("gitea", "pull_request.opened.fork.json"), "pull_request")

    assert response.json()["status"] == "blocked"
    assert runs(queue, launcher) == []


@pytest.mark.parametrize("secret", ["another-secret-of-32-characters!!", ""])
def test_gitea_bad_signature(client, queue, launcher, secret):
    body = load("gitea", "pull_request.opened.json")
    headers = {
        "Content-Type": "application/json",
        "X-Gitea-Event-Type": "pull_request",
        "X-Gitea-Signature": gitea.sign(secret.encode(), body) if secret else "",
    }

    response = client.post("/webhooks/gitea", content=body, headers=headers)

    assert response.status_code == 401
    assert runs(queue, launcher) == []


def test_gitea_push_is_ignored(client, queue, launcher):
    response = to_gitea(client, load("gitea", "push.json"), "push")

    assert response.json()["status"] == "ignored"


def test_gitlab_open_deploys(client, queue, launcher):
    body = load("gitlab", "merge_request.open.json")

    response = to_gitlab(client, body)

    assert response.status_code == 202, response.text
    assert [action for action, _, _ in runs(queue, launcher)] == ["deploy"]


def test_gitlab_title_update_is_ignored(client, queue, launcher):
    response = to_gitlab(client, load("gitlab", "merge_request.update.title.json"))

    assert response.json()["status"] == "ignored"
    assert runs(queue, launcher) == []


@pytest.mark.parametrize("token", ["wrong-token", ""])
def test_gitlab_wrong_token(client, queue, launcher, token):
    response = to_gitlab(client, load("gitlab", "merge_request.open.json"), token=token)

    assert response.status_code == 401
    assert runs(queue, launcher) == []


def test_gitlab_repeated_delivery_is_ignored(client, queue, launcher):
    body = load("gitlab", "merge_request.open.json")
    to_gitlab(client, body, delivery="same")

    again = to_gitlab(client, body, delivery="same")

    assert again.json()["status"] == "ignored"
    assert len(runs(queue, launcher)) == 1


def test_gitlab_push_is_ignored(client, queue, launcher):
    response = to_gitlab(client, load("gitlab", "push.json"), event="Push Hook")

    assert response.json()["status"] == "ignored"
