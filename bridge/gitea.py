"""Gitea and Forgejo webhooks: signature check and the mapping of pull_request events to requests.

Forgejo is a fork of Gitea. It sends every Gitea header and body field, and copies each
X-Gitea-* header as X-Forgejo-*.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from bridge.forge import (
    Ignored,
    PayloadError,
    PullRequestEvent,
    first_header,
    header_bytes,
    optional_login,
    read_pull_request,
)
from bridge.models import Action

__all__ = [
    "Ignored",
    "PayloadError",
    "PullRequestEvent",
    "delivery_id",
    "event_type",
    "is_pull_request_event",
    "parse_pull_request",
    "sign",
    "signature_header",
    "signature_is_valid",
]

SIGNATURE_HEADERS = ("X-Forgejo-Signature", "X-Gitea-Signature")
DELIVERY_HEADERS = ("X-Forgejo-Delivery", "X-Gitea-Delivery")
# X-*-Event-Type carries the detailed type (pull_request_sync) and X-*-Event the group it
# belongs to (pull_request). Older Gitea releases sent the detailed type in X-Gitea-Event
# and had no X-Gitea-Event-Type, so the group header is the fallback.
EVENT_HEADERS = ("X-Forgejo-Event-Type", "X-Gitea-Event-Type", "X-Forgejo-Event", "X-Gitea-Event")

# The event types that Gitea groups as "pull_request" (HookEventType.Event in Gitea's
# modules/webhook/type.go), whose body is a pull-request payload.
PULL_REQUEST_EVENT_TYPES = frozenset(
    {
        "pull_request",
        "pull_request_assign",
        "pull_request_label",
        "pull_request_milestone",
        "pull_request_review_request",
        "pull_request_sync",
    }
)

# Gitea's "synchronized" is GitHub's "synchronize": new commits on the head branch.
DEPLOY_ACTIONS = frozenset({"opened", "reopened", "synchronized"})
# A merge is "closed" with pull_request.merged true.
CLEANUP_ACTIONS = frozenset({"closed"})

# Body path of each request field, named in PayloadError messages.
FIELD_PATHS = {
    "number": "pull_request.number",
    "sha": "pull_request.head.sha",
    "ref": "pull_request.head.ref",
    "author": "pull_request.user.login",
    "repository": "pull_request.base.repo.full_name",
    "delivery": "X-Gitea-Delivery",
}


def signature_is_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Check X-Gitea-Signature or X-Forgejo-Signature in constant time.

    The header is the lowercase hex HMAC-SHA256 of the raw body, with no "sha256=" prefix.
    Gitea sends it empty when the webhook has no secret, and that never matches.
    """
    if not header:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    # Bytes, because compare_digest rejects str with non-ASCII characters.
    return hmac.compare_digest(expected, header_bytes(header))


def sign(secret: bytes, body: bytes) -> str:
    """Return the X-Gitea-Signature value Gitea would send for body."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_header(headers: Mapping[str, str]) -> str | None:
    """Return the signature a request carries: X-Forgejo-Signature, else X-Gitea-Signature."""
    return first_header(headers, SIGNATURE_HEADERS)


def delivery_id(headers: Mapping[str, str]) -> str:
    """Return the delivery UUID (X-Forgejo-Delivery, else X-Gitea-Delivery), or ""."""
    return first_header(headers, DELIVERY_HEADERS) or ""


def event_type(headers: Mapping[str, str]) -> str:
    """Return the detailed event type a request carries (pull_request_sync), or ""."""
    return first_header(headers, EVENT_HEADERS) or ""


def is_pull_request_event(headers: Mapping[str, str]) -> bool:
    """Return whether a request carries a pull-request body that parse_pull_request reads."""
    return event_type(headers) in PULL_REQUEST_EVENT_TYPES


def parse_pull_request(payload: dict[str, Any], delivery: str) -> PullRequestEvent | Ignored:
    """Map a pull_request event body to a deploy or cleanup event, or return why it is ignored.

    Raises PayloadError, naming the field, when a field that the action needs is missing
    or invalid. Gitea states no author association, so association is None.
    """
    action = payload.get("action")
    if not isinstance(action, str):
        raise PayloadError("action", "is missing or not a string")
    kind: Action
    if action in DEPLOY_ACTIONS:
        kind = "deploy"
    elif action in CLEANUP_ACTIONS:
        kind = "cleanup"
    else:
        # NOTE: label_updated carries the whole label set, not the label that was added, so
        # a label cannot approve a fork pull request on Gitea yet.
        return Ignored(f"pull_request action {action!r} starts no run")

    request, from_fork = read_pull_request(payload, kind, delivery, FIELD_PATHS)
    if kind == "cleanup":
        return PullRequestEvent(request=request, from_fork=from_fork)
    return PullRequestEvent(
        request=request,
        from_fork=from_fork,
        sender=optional_login(payload.get("sender"), "login"),
    )
