"""GitHub webhooks: signature check and the mapping of pull_request events to requests."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, TypeVar

from bridge.models import LOGIN, REPOSITORY, SHA, PreviewRequest, ref_name_error

SIGNATURE_PREFIX = "sha256="

T = TypeVar("T")

DEPLOY_ACTIONS = frozenset({"opened", "reopened", "synchronize"})
CLEANUP_ACTIONS = frozenset({"closed"})


class PayloadError(ValueError):
    """The body is signed but lacks a field the event needs, or has one of the wrong type."""


@dataclass(frozen=True)
class Ignored:
    """An event that starts nothing, with the reason sent back to GitHub."""

    reason: str


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


def parse_pull_request(payload: dict[str, Any], delivery: str) -> PreviewRequest | Ignored:
    """Map a pull_request event body to a deploy or cleanup request, or return why it is ignored.

    Raises PayloadError when a field that the action needs is missing, and pydantic's
    ValidationError when a field is present but invalid.
    """
    action = payload.get("action")
    if not isinstance(action, str):
        raise PayloadError("'action' is missing or not a string")
    if action in DEPLOY_ACTIONS:
        kind = "deploy"
    elif action in CLEANUP_ACTIONS:
        kind = "cleanup"
    else:
        return Ignored(f"pull_request action {action!r} starts no run")

    pull_request = _object(payload, "pull_request")
    head = _object(pull_request, "head")
    base_repository = _object(_object(pull_request, "base"), "repo")
    user = pull_request.get("user") or {}

    if kind == "deploy" and _is_from_fork(head, base_repository):
        # TODO: let a maintainer approve one exact SHA of a fork's pull request. Until then no
        # fork pull request is built, because no maintainer has reviewed its code.
        return Ignored(
            "pull request comes from another repository than the base; "
            "fork pull requests are not deployed automatically"
        )

    number = _field(pull_request, "number", int)
    ref = _field(head, "ref", str)
    author = user.get("login", "") if isinstance(user, dict) else ""
    if kind == "cleanup":
        # A cleanup needs only the number: a field that fails validation must not keep a
        # closed pull request's preview running, so it is left out instead.
        sha = head.get("sha")
        repository = base_repository.get("full_name")
        return PreviewRequest(
            action=kind,
            number=number,
            sha=sha if isinstance(sha, str) and SHA.fullmatch(sha) else None,
            ref=ref if ref_name_error(ref) is None else "",
            author=author if isinstance(author, str) and LOGIN.fullmatch(author) else "",
            repository=repository
            if isinstance(repository, str) and REPOSITORY.fullmatch(repository)
            else "",
            delivery=delivery,
        )

    return PreviewRequest(
        action=kind,
        number=number,
        sha=_field(head, "sha", str),
        ref=ref,
        author=author,
        repository=_field(base_repository, "full_name", str),
        delivery=delivery,
    )


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


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise PayloadError(f"'{key}' is missing or not an object")
    return value


def _field(parent: dict[str, Any], key: str, kind: type[T]) -> T:
    value = parent.get(key)
    # bool is a subclass of int, and true is no pull request number.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PayloadError(f"'{key}' is missing or not of type {kind.__name__}")
    return value
