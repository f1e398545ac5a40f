"""GitLab webhooks: token check and the mapping of merge request events to requests."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from bridge.forge import (
    Ignored,
    PayloadError,
    PullRequestEvent,
    build_cleanup_request,
    build_request,
    first_header,
    header_bytes,
    object_or_empty,
    require_field,
    require_object,
)
from bridge.models import Action, PreviewRequest

__all__ = [
    "Ignored",
    "PayloadError",
    "PullRequestEvent",
    "delivery_id",
    "is_merge_request_event",
    "parse_pull_request",
    "token_is_valid",
]

EVENT_HEADER = "X-Gitlab-Event"
TOKEN_HEADER = "X-Gitlab-Token"  # noqa: S105 - a header name, not a secret
MERGE_REQUEST_EVENT = "Merge Request Hook"
MERGE_REQUEST_KIND = "merge_request"
# Idempotency-Key stays the same when GitLab retries a delivery, so it identifies repeats.
# X-Gitlab-Webhook-UUID is new on every request, and releases before Idempotency-Key send
# only that one.
DELIVERY_HEADERS = ("Idempotency-Key", "X-Gitlab-Webhook-UUID")

DEPLOY_ACTIONS = frozenset({"open", "reopen"})
# GitLab sends "update" for title, label, target-branch and other edits too. Its webhook
# events documentation says object_attributes.oldrev is present only when code changed.
UPDATE = "update"
CLEANUP_ACTIONS = frozenset({"close", "merge"})

# Body path of each request field, named in PayloadError messages.
FIELD_PATHS = {
    "number": "object_attributes.iid",
    "sha": "object_attributes.last_commit.id",
    "ref": "object_attributes.source_branch",
    "author": "user.username",
    "repository": "project.path_with_namespace",
    "delivery": "Idempotency-Key",
}


def token_is_valid(secret: bytes, header: str | None) -> bool:
    """Check X-Gitlab-Token, the webhook's secret token sent verbatim, in constant time.

    GitLab signs no body, so the token is all there is to check. Both sides are hashed
    first so that the comparison takes the same time whatever the token's length.
    """
    if not header or not secret:
        return False
    expected = hashlib.sha256(secret).digest()
    received = hashlib.sha256(header_bytes(header)).digest()
    return hmac.compare_digest(expected, received)


def delivery_id(headers: Mapping[str, str]) -> str:
    """Return the delivery id (Idempotency-Key, else X-Gitlab-Webhook-UUID), or ""."""
    return first_header(headers, DELIVERY_HEADERS) or ""


def is_merge_request_event(headers: Mapping[str, str]) -> bool:
    """Return whether a request carries X-Gitlab-Event: Merge Request Hook."""
    return first_header(headers, (EVENT_HEADER,)) == MERGE_REQUEST_EVENT


def parse_pull_request(payload: dict[str, Any], delivery: str) -> PullRequestEvent | Ignored:
    """Map a merge request event body to a deploy or cleanup event, or return why it is ignored.

    Raises PayloadError, naming the field, when a field that the action needs is missing
    or invalid. GitLab states no author association, so association is None.
    """
    if payload.get("object_kind") != MERGE_REQUEST_KIND:
        raise PayloadError("object_kind", f"is missing or not {MERGE_REQUEST_KIND!r}")
    attributes = require_object(payload, "object_attributes")
    action = require_field(attributes, "action", str, "object_attributes.")
    kind = _run_action(attributes, action)
    if kind is None:
        return Ignored(_ignored_reason(action))

    number = require_field(attributes, "iid", int, "object_attributes.")
    from_fork = _is_from_fork(attributes)
    if kind == "cleanup":
        return PullRequestEvent(
            request=_cleanup_request(payload, attributes, number, delivery),
            from_fork=from_fork,
        )

    request = _deploy_request(payload, attributes, number, delivery)
    return PullRequestEvent(request=request, from_fork=from_fork, sender=request.author)


def _run_action(attributes: dict[str, Any], action: str) -> Action | None:
    if action in DEPLOY_ACTIONS or (action == UPDATE and _has_new_commits(attributes)):
        return "deploy"
    if action in CLEANUP_ACTIONS:
        return "cleanup"
    return None


def _has_new_commits(attributes: dict[str, Any]) -> bool:
    oldrev = attributes.get("oldrev")
    return isinstance(oldrev, str) and oldrev != ""


def _ignored_reason(action: str) -> str:
    if action == UPDATE:
        return "merge request action 'update' without new commits starts no run"
    return f"merge request action {action!r} starts no run"


def _is_from_fork(attributes: dict[str, Any]) -> bool:
    """Return whether the source project differs from the target, or either id is missing."""
    source = attributes.get("source_project_id")
    target = attributes.get("target_project_id")
    if not _is_id(source) or not _is_id(target):
        return True
    return bool(source != target)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _deploy_request(
    payload: dict[str, Any], attributes: dict[str, Any], number: int, delivery: str
) -> PreviewRequest:
    last_commit = require_object(attributes, "last_commit", "object_attributes.")
    project = require_object(payload, "project")
    # NOTE: user is who triggered the event (the pusher, for an update), and it becomes the
    # author. GitLab's body gives the merge request's author only as a number (author_id).
    user = require_object(payload, "user")
    fields = {
        "action": "deploy",
        "number": number,
        "sha": require_field(last_commit, "id", str, "object_attributes.last_commit."),
        "ref": require_field(attributes, "source_branch", str, "object_attributes."),
        "author": require_field(user, "username", str, "user."),
        "repository": require_field(project, "path_with_namespace", str, "project."),
        "delivery": delivery,
    }
    return build_request(fields, FIELD_PATHS)


def _cleanup_request(
    payload: dict[str, Any], attributes: dict[str, Any], number: int, delivery: str
) -> PreviewRequest:
    last_commit = object_or_empty(attributes.get("last_commit"))
    fields = {
        "number": number,
        "sha": last_commit.get("id"),
        "ref": attributes.get("source_branch"),
        "author": object_or_empty(payload.get("user")).get("username"),
        "repository": object_or_empty(payload.get("project")).get("path_with_namespace"),
        "delivery": delivery,
    }
    return build_cleanup_request(fields, FIELD_PATHS)
