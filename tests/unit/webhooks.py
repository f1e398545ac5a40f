"""Signed deliveries to a bridge under test, and what they started."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from bridge import github
from tests.unit.fakes import wait_for

SECRET = "0123456789abcdef0123456789abcdef"
API_TOKEN = "fedcba9876543210fedcba9876543210"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "b" * 40


def runs(queue, launcher) -> list[tuple[str, int, str | None]]:
    """Wait until the queue has run everything accepted; return the runs it started."""
    wait_for(queue.idle)
    return [(call.action, call.number, call.sha) for call in launcher.calls]


def post(client, payload, event="pull_request", secret=SECRET, headers=None, delivery=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": github.sign(secret.encode(), body),
    }
    sent.update(headers or {})
    return client.post("/webhooks/github", content=body, headers=sent)


def fixture(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text())
    return data.get("body", data) if name.endswith(".delivery.json") else data
