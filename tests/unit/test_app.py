import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bridge import github, origin
from bridge.app import create_app
from bridge.models import PreviewRequest
from bridge.settings import Settings

SECRET = "0123456789abcdef0123456789abcdef"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


class RecordingQueue:
    """Stands in for the run queue and records what the bridge submits."""

    def __init__(self):
        self.requests: list[PreviewRequest] = []

    def submit(self, request):
        self.requests.append(request)
        return f"run-{len(self.requests)}", None

    def shutdown(self):
        pass


@pytest.fixture
def queue():
    return RecordingQueue()


@pytest.fixture
def client(queue, tmp_path):
    settings = Settings(webhook_secret=SECRET, data_dir=tmp_path, max_body_bytes=64 * 1024)
    with TestClient(create_app(settings, queue=queue)) as test_client:
        yield test_client


def post(client, payload, event="pull_request", secret=SECRET, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": github.sign(secret.encode(), body),
    }
    sent.update(headers or {})
    return client.post("/webhooks/github", content=body, headers=sent)


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_webhook_opened_starts_deploy(client, queue):
    response = post(client, fixture("pull_request.opened.json"))

    assert response.status_code == 202
    assert response.json()["action"] == "deploy"
    assert [(r.action, r.number, r.sha) for r in queue.requests] == [("deploy", 2, SHA)]


def test_webhook_synchronize_starts_deploy(client, queue):
    response = post(client, fixture("pull_request.synchronize.json"))

    assert response.status_code == 202
    assert queue.requests[0].action == "deploy"


def test_webhook_closed_starts_cleanup(client, queue):
    response = post(client, fixture("pull_request.closed.json"))

    assert response.status_code == 202
    assert [(r.action, r.number) for r in queue.requests] == [("cleanup", 2)]


def test_webhook_bad_signature(client, queue):
    response = post(
        client, fixture("pull_request.opened.json"), secret="another-secret-of-32-characters!"
    )

    assert response.status_code == 401
    assert queue.requests == []


def test_webhook_missing_signature(client, queue):
    body = json.dumps(fixture("pull_request.opened.json")).encode()

    response = client.post(
        "/webhooks/github", content=body, headers={"X-GitHub-Event": "pull_request"}
    )

    assert response.status_code == 401
    assert queue.requests == []


def test_webhook_unsigned_garbage_is_not_parsed(client, queue):
    response = client.post(
        "/webhooks/github",
        content=b"{not json",
        headers={"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": "sha256=00"},
    )

    assert response.status_code == 401


def test_webhook_ping(client, queue):
    response = post(client, fixture("ping.json"), event="ping")

    assert response.status_code == 200
    assert response.json() == {"status": "pong"}
    assert queue.requests == []


def test_webhook_push_ignored(client, queue):
    response = post(client, fixture("push.json"), event="push")

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert "push" in response.json()["reason"]
    assert queue.requests == []


def test_webhook_labeled_ignored(client, queue):
    response = post(client, fixture("pull_request.labeled.json"))

    assert response.status_code == 200
    assert "labeled" in response.json()["reason"]
    assert queue.requests == []


def test_webhook_invalid_ref(client, queue):
    payload = origin.pull_request_payload("opened", 5, SHA, "bad ref with spaces")

    response = post(client, payload)

    assert response.status_code == 422
    assert "ref" in response.json()["detail"]
    assert queue.requests == []


def test_webhook_missing_field(client, queue):
    payload = fixture("pull_request.opened.json")
    del payload["pull_request"]["base"]

    response = post(client, payload)

    assert response.status_code == 422
    assert "base" in response.json()["detail"]
    assert queue.requests == []


def test_webhook_signed_invalid_json(client, queue):
    response = post(client, b"[1, 2")

    assert response.status_code == 400
    assert queue.requests == []


def test_webhook_signed_array(client, queue):
    response = post(client, b"[]")

    assert response.status_code == 400


def test_webhook_body_too_large(client, queue):
    payload = fixture("pull_request.opened.json")
    payload["padding"] = "x" * (64 * 1024)

    response = post(client, payload)

    assert response.status_code == 413
    assert queue.requests == []


def test_app_rejects_missing_secret(tmp_path):
    with pytest.raises(RuntimeError, match="PREVIEWS_WEBHOOK_SECRET"):
        create_app(Settings(data_dir=tmp_path))


@pytest.mark.parametrize("secret", ["changeme", "short", "secret"])
def test_settings_reject_placeholder_secret(secret):
    with pytest.raises(ValueError, match="placeholder or shorter"):
        Settings(webhook_secret=secret)


def test_webhook_non_ascii_signature(client, queue):
    body = json.dumps(fixture("pull_request.opened.json")).encode()

    response = client.post(
        "/webhooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "pull_request",
            "X-Hub-Signature-256": "sha256=\u00e9".encode("latin-1"),
        },
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [b"[" * 30_000 + b"]" * 30_000, b'{"n": ' + b"9" * 5000 + b"}"],
    ids=["deep", "long-number"],
)
def test_webhook_pathological_json(client, queue, body):
    response = post(client, body)

    assert response.status_code == 400
    assert queue.requests == []


def test_no_docs_endpoints(client):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404
