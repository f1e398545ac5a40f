import json

import pytest
from fastapi.testclient import TestClient

from bridge import origin
from bridge.app import create_app
from bridge.queue import RunQueue
from bridge.settings import Settings
from tests.unit.fakes import Launcher
from tests.unit.webhooks import SHA, fixture, post, runs


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_webhook_opened_starts_deploy(client, queue, launcher):
    response = post(client, fixture("pull_request.opened.json"))

    assert response.status_code == 202
    assert response.json()["action"] == "deploy"
    assert runs(queue, launcher) == [("deploy", 2, SHA)]


def test_webhook_synchronize_starts_deploy(client, queue, launcher):
    response = post(client, fixture("pull_request.synchronize.json"))

    assert response.status_code == 202
    assert runs(queue, launcher) == [("deploy", 2, SHA)]


def test_webhook_closed_starts_cleanup(client, queue, launcher):
    response = post(client, fixture("pull_request.closed.json"))

    assert response.status_code == 202
    assert runs(queue, launcher) == [("cleanup", 2, SHA)]


def test_webhook_bad_signature(client, queue, launcher):
    response = post(
        client, fixture("pull_request.opened.json"), secret="another-secret-of-32-characters!"
    )

    assert response.status_code == 401
    assert runs(queue, launcher) == []


def test_webhook_missing_signature(client, queue, launcher):
    body = json.dumps(fixture("pull_request.opened.json")).encode()

    response = client.post(
        "/webhooks/github",
        content=body,
        headers={"X-GitHub-Event": "pull_request", "Content-Type": "application/json"},
    )

    assert response.status_code == 401
    assert runs(queue, launcher) == []


def test_webhook_unsigned_garbage_is_not_parsed(client, queue, launcher):
    response = client.post(
        "/webhooks/github",
        content=b"{not json",
        headers={
            "X-GitHub-Event": "pull_request",
            "X-Hub-Signature-256": "sha256=00",
            "Content-Type": "application/json",
        },
    )

    assert response.status_code == 401


def test_webhook_ping(client, queue, launcher):
    response = post(client, fixture("ping.json"), event="ping")

    assert response.status_code == 200
    assert response.json() == {"status": "pong"}
    assert runs(queue, launcher) == []


def test_webhook_push_ignored(client, queue, launcher):
    response = post(client, fixture("push.json"), event="push")

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert "push" in response.json()["reason"]
    assert runs(queue, launcher) == []


def test_webhook_other_label_ignored(client, queue, launcher):
    response = post(client, fixture("pull_request.labeled.json"))

    assert response.status_code == 200
    assert "'bug' is not the approval label" in response.json()["reason"]
    assert runs(queue, launcher) == []


def test_webhook_invalid_ref(client, queue, launcher):
    payload = origin.pull_request_payload("opened", 5, SHA, "bad ref with spaces")

    response = post(client, payload)

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["field"] == "pull_request.head.ref"
    assert "space" in error["reason"]
    assert runs(queue, launcher) == []


def test_webhook_missing_field(client, queue, launcher):
    payload = fixture("pull_request.opened.json")
    del payload["pull_request"]["base"]

    response = post(client, payload)

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "pull_request.base", "reason": "is missing or not an object"}
    ]
    assert runs(queue, launcher) == []


def test_webhook_signed_invalid_json(client, queue, launcher):
    response = post(client, b"[1, 2")

    assert response.status_code == 400
    assert runs(queue, launcher) == []


def test_webhook_signed_array(client, queue, launcher):
    response = post(client, b"[]")

    assert response.status_code == 400


def test_webhook_body_too_large(client, queue, launcher):
    payload = fixture("pull_request.opened.json")
    payload["padding"] = "x" * (64 * 1024)

    response = post(client, payload)

    assert response.status_code == 413
    assert runs(queue, launcher) == []


def test_app_rejects_missing_secret(tmp_path):
    with pytest.raises(RuntimeError, match="PREVIEWS_WEBHOOK_SECRET"):
        create_app(Settings(data_dir=tmp_path))


@pytest.mark.parametrize("secret", ["changeme", "short", "secret"])
def test_settings_reject_placeholder_secret(secret):
    with pytest.raises(ValueError, match="placeholder or shorter"):
        Settings(webhook_secret=secret)


def test_webhook_non_ascii_signature(client, queue, launcher):
    body = json.dumps(fixture("pull_request.opened.json")).encode()

    response = client.post(
        "/webhooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "pull_request",
            "X-Hub-Signature-256": "sha256=\u00e9".encode("latin-1"),
            "Content-Type": "application/json",
        },
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [b"[" * 30_000 + b"]" * 30_000, b'{"n": ' + b"9" * 5000 + b"}"],
    ids=["deep", "long-number"],
)
def test_webhook_pathological_json(client, queue, launcher, body):
    response = post(client, body)

    assert response.status_code == 400
    assert runs(queue, launcher) == []


def test_no_docs_pages(client):
    for path in ("/docs", "/redoc", "/openapi.json", "/api/docs"):
        assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "", "application/jsonx"]
)
def test_webhook_wrong_content_type(client, queue, launcher, content_type):
    response = post(
        client, fixture("pull_request.opened.json"), headers={"Content-Type": content_type}
    )

    assert response.status_code == 415
    assert runs(queue, launcher) == []


def test_webhook_json_with_charset_is_accepted(client, queue, launcher):
    response = post(
        client,
        fixture("pull_request.opened.json"),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 202


def test_replayed_delivery_is_ignored(client, queue, launcher):
    payload = fixture("pull_request.opened.json")
    first = post(client, payload, delivery="d-1")

    second = post(client, payload, delivery="d-1")

    assert first.status_code == 202
    assert second.status_code == 200
    assert "already accepted" in second.json()["reason"]
    assert runs(queue, launcher) == [("deploy", 2, SHA)]


def test_replayed_delivery_is_ignored_after_a_restart(settings, client, queue, launcher):
    post(client, fixture("pull_request.opened.json"), delivery="d-2")
    runs(queue, launcher)
    later = Launcher()
    restarted = RunQueue(settings, launcher=later)

    with TestClient(create_app(settings, queue=restarted)) as other:
        response = post(other, fixture("pull_request.opened.json"), delivery="d-2")

    assert response.json()["status"] == "ignored"
    assert runs(restarted, later) == []


def test_invalid_delivery_id(client, queue, launcher):
    response = post(client, fixture("pull_request.opened.json"), delivery="../../etc/passwd")

    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "X-GitHub-Delivery"
    assert runs(queue, launcher) == []


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("number",), 0, "pull_request.number"),
        (("number",), 10**12, "pull_request.number"),
        (("number",), True, "pull_request.number"),
        (("number",), "7", "pull_request.number"),
        (("head", "sha"), "ABC", "pull_request.head.sha"),
        (("head", "sha"), "g" * 40, "pull_request.head.sha"),
        (("head", "ref"), "a..b", "pull_request.head.ref"),
        (("head", "ref"), "-rf", "pull_request.head.ref"),
        (("head", "ref"), "x" * 256, "pull_request.head.ref"),
        (("user", "login"), "bad login", "pull_request.user.login"),
        (("base", "repo", "full_name"), "no-slash", "pull_request.base.repo.full_name"),
        (("base", "repo", "full_name"), None, "pull_request.base.repo.full_name"),
    ],
)
def test_invalid_field_gives_422_and_starts_nothing(
    settings, client, queue, launcher, path, value, field
):
    payload = fixture("pull_request.synchronize.json")
    target = payload["pull_request"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    response = post(client, payload)

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["field"] == field
    assert error["reason"]
    assert runs(queue, launcher) == []
    assert not list((settings.state_dir / "deliveries").iterdir())
    assert not list((settings.state_dir / "pending").iterdir())


def test_label_on_a_closed_pull_request_is_ignored(client, queue, launcher):
    payload = origin.pull_request_payload(
        "labeled", 9, SHA, "x", head="fork", label="preview-approved"
    )
    payload["pull_request"]["state"] = "closed"

    response = post(client, payload)

    assert response.json()["status"] == "ignored"
    assert "closed" in response.json()["reason"]
    assert runs(queue, launcher) == []
