"""GitHub webhooks: signature check and the mapping of pull_request events to requests."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from bridge.forge import (
    Ignored,
    PayloadError,
    PullRequestEvent,
    header_bytes,
    optional_login,
    read_pull_request,
)
from bridge.models import Action

__all__ = [
    "Ignored",
    "PayloadError",
    "PullRequestEvent",
    "parse_pull_request",
    "sign",
    "signature_is_valid",
]

SIGNATURE_PREFIX = "sha256="

DEPLOY_ACTIONS = frozenset({"opened", "reopened", "synchronize"})
CLEANUP_ACTIONS = frozenset({"closed"})
LABELED = "labeled"


def signature_is_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Check X-Hub-Signature-256 (sha256=<hex HMAC-SHA256 of the raw body>) in constant time."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    # Bytes, because compare_digest rejects str with non-ASCII characters.
    received = header_bytes(header.removeprefix(SIGNATURE_PREFIX))
    return hmac.compare_digest(expected, received)


def sign(secret: bytes, body: bytes) -> str:
    """Return the X-Hub-Signature-256 value GitHub would send for body."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


# Where each request field comes from in a pull_request body, for error messages.
FIELD_PATHS = {
    "number": "pull_request.number",
    "sha": "pull_request.head.sha",
    "ref": "pull_request.head.ref",
    "author": "pull_request.user.login",
    "repository": "pull_request.base.repo.full_name",
    "delivery": "X-GitHub-Delivery",
}


def parse_pull_request(payload: dict[str, Any], delivery: str) -> PullRequestEvent | Ignored:
    """Map a pull_request event body to a deploy or cleanup event, or return why it is ignored.

    "labeled" maps to a deploy event that carries the label: only the trust policy knows
    whether that label approves the head SHA. Raises PayloadError, naming the field, when a
    field that the action needs is missing or invalid.
    """
    action = payload.get("action")
    if not isinstance(action, str):
        raise PayloadError("action", "is missing or not a string")
    kind: Action
    if action in DEPLOY_ACTIONS or action == LABELED:
        kind = "deploy"
    elif action in CLEANUP_ACTIONS:
        kind = "cleanup"
    else:
        return Ignored(f"pull_request action {action!r} starts no run")

    if action == LABELED and _state(payload) == "closed":
        # A label added after the close must not bring the preview back.
        return Ignored("label added to a closed pull request")
    request, from_fork = read_pull_request(payload, kind, delivery, FIELD_PATHS)
    if kind == "cleanup":
        return PullRequestEvent(request=request, from_fork=from_fork)

    association = payload["pull_request"].get("author_association")
    return PullRequestEvent(
        request=request,
        from_fork=from_fork,
        association=association if isinstance(association, str) else "",
        label=_added_label(payload) if action == LABELED else None,
        sender=optional_login(payload.get("sender"), "login"),
    )


def _added_label(payload: dict[str, Any]) -> str:
    label = payload.get("label")
    name = label.get("name") if isinstance(label, dict) else None
    if not isinstance(name, str):
        raise PayloadError("label.name", "is missing or not a string")
    return name


def _state(payload: dict[str, Any]) -> str:
    pull_request = payload.get("pull_request")
    state = pull_request.get("state") if isinstance(pull_request, dict) else None
    return state if isinstance(state, str) else ""
