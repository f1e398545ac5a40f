"""GitHub webhooks: signature check and the mapping of pull_request events to requests."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, TypeVar

from bridge.forge import Ignored, PayloadError, PullRequestEvent, build_request
from bridge.models import LOGIN, REPOSITORY, SHA, ref_name_error

SIGNATURE_PREFIX = "sha256="

T = TypeVar("T")

DEPLOY_ACTIONS = frozenset({"opened", "reopened", "synchronize"})
CLEANUP_ACTIONS = frozenset({"closed"})
LABELED = "labeled"


def signature_is_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Check X-Hub-Signature-256 (sha256=<hex HMAC-SHA256 of the raw body>) in constant time."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    # Bytes, because compare_digest rejects str with non-ASCII characters.
    received = header.removeprefix(SIGNATURE_PREFIX).encode("utf-8", "surrogateescape")
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
    if action in DEPLOY_ACTIONS or action == LABELED:
        kind = "deploy"
    elif action in CLEANUP_ACTIONS:
        kind = "cleanup"
    else:
        return Ignored(f"pull_request action {action!r} starts no run")

    pull_request = _object(payload, "pull_request")
    head = _object(pull_request, "head", "pull_request.")
    base_repository = _object(
        _object(pull_request, "base", "pull_request."), "repo", "pull_request.base."
    )
    user = pull_request.get("user") or {}
    author = user.get("login", "") if isinstance(user, dict) else ""
    number = _field(pull_request, "number", int, "pull_request.")
    ref = _field(head, "ref", str, "pull_request.head.")

    if kind == "cleanup":
        # A cleanup needs only the number: a field that fails validation must not keep a
        # closed pull request's preview running, so it is left out instead.
        sha = head.get("sha")
        repository = base_repository.get("full_name")
        request = build_request(
            {
                "action": kind,
                "number": number,
                "sha": sha if isinstance(sha, str) and SHA.fullmatch(sha) else None,
                "ref": ref if ref_name_error(ref) is None else "",
                "author": author if isinstance(author, str) and LOGIN.fullmatch(author) else "",
                "repository": repository
                if isinstance(repository, str) and REPOSITORY.fullmatch(repository)
                else "",
                "delivery": delivery,
            },
            FIELD_PATHS,
        )
        return PullRequestEvent(request=request, from_fork=_is_from_fork(head, base_repository))

    request = build_request(
        {
            "action": kind,
            "number": number,
            "sha": _field(head, "sha", str, "pull_request.head."),
            "ref": ref,
            "author": author,
            "repository": _field(base_repository, "full_name", str, "pull_request.base.repo."),
            "delivery": delivery,
        },
        FIELD_PATHS,
    )
    association = pull_request.get("author_association")
    return PullRequestEvent(
        request=request,
        from_fork=_is_from_fork(head, base_repository),
        association=association if isinstance(association, str) else "",
        label=_added_label(payload) if action == LABELED else None,
        sender=_sender(payload),
    )


def _added_label(payload: dict[str, Any]) -> str:
    label = payload.get("label")
    name = label.get("name") if isinstance(label, dict) else None
    if not isinstance(name, str):
        raise PayloadError("label.name", "is missing or not a string")
    return name


def _sender(payload: dict[str, Any]) -> str:
    sender = payload.get("sender")
    login = sender.get("login") if isinstance(sender, dict) else None
    return login if isinstance(login, str) and LOGIN.fullmatch(login) else ""


def _is_from_fork(head: dict[str, Any], base_repository: dict[str, Any]) -> bool:
    """Return whether the head lives in another repository than the base.

    head.repo is null when the fork was deleted. head.repo.fork describes the repository
    (true for any fork, even for a pull request within it), so it decides nothing.
    """
    head_repository = head.get("repo")
    if not isinstance(head_repository, dict):
        return True
    if "id" in head_repository and "id" in base_repository:
        return bool(head_repository["id"] != base_repository["id"])
    return bool(head_repository.get("full_name") != base_repository.get("full_name"))


def _object(parent: dict[str, Any], key: str, path: str = "") -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise PayloadError(path + key, "is missing or not an object")
    return value


def _field(parent: dict[str, Any], key: str, kind: type[T], path: str) -> T:
    value = parent.get(key)
    # bool is a subclass of int, and true is no pull request number.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PayloadError(path + key, f"is missing or not of type {kind.__name__}")
    return value
