"""What every forge adapter turns a webhook body into, whatever the forge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from bridge.models import Action, PreviewRequest, login_error

T = TypeVar("T")

# Request fields that a cleanup can do without, because it needs only the pull-request number.
CLEANUP_OPTIONAL_FIELDS = ("sha", "ref", "author", "repository")


class PayloadError(ValueError):
    """The body is signed but a field the event needs is missing, of the wrong type or invalid.

    field is the field's path in the body (pull_request.head.sha), reason says what is wrong.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Ignored:
    """An event that starts nothing, with the reason sent back to the forge."""

    reason: str


@dataclass(frozen=True)
class PullRequestEvent:
    """A pull-request event that may start a run, before the trust policy has seen it.

    from_fork: the head lives in another repository than the base, or that repository
    was deleted. association: the author's relation to the repository as the forge states
    it (GitHub's author_association), or None where the forge states none. label: the
    label that this event added, for label events; the trust policy decides whether it
    approves the head SHA. sender: the login of who triggered the event.
    """

    request: PreviewRequest
    from_fork: bool
    association: str | None = None
    label: str | None = None
    sender: str = ""


def build_request(fields: dict[str, Any], paths: dict[str, str]) -> PreviewRequest:
    """Validate a request, naming an invalid field by its path in the body (paths maps
    a PreviewRequest field to it), so that the forge's delivery log says what to fix."""
    try:
        return PreviewRequest.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "request"
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise PayloadError(paths.get(name, name), reason) from error


def build_cleanup_request(fields: dict[str, Any], paths: dict[str, str]) -> PreviewRequest:
    """Validate a cleanup request, leaving out each optional field that is invalid.

    A field that fails validation must not keep a closed pull request's preview running,
    so only an invalid number or delivery id raises PayloadError.
    """
    kept = {
        name: value
        for name, value in fields.items()
        if name not in CLEANUP_OPTIONAL_FIELDS or _field_is_valid(name, value)
    }
    return build_request({**kept, "action": "cleanup"}, paths)


def _field_is_valid(name: str, value: Any) -> bool:
    try:
        PreviewRequest.model_validate({"action": "cleanup", "number": 1, name: value})
    except ValidationError:
        return False
    return True


def read_pull_request(
    payload: dict[str, Any], action: Action, delivery: str, paths: dict[str, str]
) -> tuple[PreviewRequest, bool]:
    """Read a request, and whether its head is from a fork, from a pull_request body.

    GitHub, Gitea and Forgejo share the fields read here (paths names them for errors).
    A deploy raises PayloadError for any missing or invalid field, a cleanup only for the
    number and the delivery id.
    """
    pull_request = require_object(payload, "pull_request")
    number = require_field(pull_request, "number", int, "pull_request.")
    if action == "cleanup":
        return _read_cleanup(pull_request, number, delivery, paths)

    head = require_object(pull_request, "head", "pull_request.")
    base = require_object(pull_request, "base", "pull_request.")
    base_repository = require_object(base, "repo", "pull_request.base.")
    user = pull_request.get("user")
    fields = {
        "action": action,
        "number": number,
        "sha": require_field(head, "sha", str, "pull_request.head."),
        "ref": require_field(head, "ref", str, "pull_request.head."),
        "author": user.get("login", "") if isinstance(user, dict) else "",
        "repository": require_field(base_repository, "full_name", str, "pull_request.base.repo."),
        "delivery": delivery,
    }
    return build_request(fields, paths), is_from_fork(head.get("repo"), base_repository)


def _read_cleanup(
    pull_request: dict[str, Any], number: int, delivery: str, paths: dict[str, str]
) -> tuple[PreviewRequest, bool]:
    head = object_or_empty(pull_request.get("head"))
    base_repository = object_or_empty(object_or_empty(pull_request.get("base")).get("repo"))
    fields = {
        "number": number,
        "sha": head.get("sha"),
        "ref": head.get("ref"),
        "author": object_or_empty(pull_request.get("user")).get("login"),
        "repository": base_repository.get("full_name"),
        "delivery": delivery,
    }
    return build_cleanup_request(fields, paths), is_from_fork(head.get("repo"), base_repository)


def require_object(parent: dict[str, Any], key: str, path: str = "") -> dict[str, Any]:
    """Return parent[key] if it is a JSON object, else raise PayloadError naming path + key."""
    value = parent.get(key)
    if not isinstance(value, dict):
        raise PayloadError(path + key, "is missing or not an object")
    return value


def require_field(parent: dict[str, Any], key: str, kind: type[T], path: str = "") -> T:
    """Return parent[key] if it is of type kind, else raise PayloadError naming path + key."""
    value = parent.get(key)
    # bool is a subclass of int, and true is no pull-request number.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PayloadError(path + key, f"is missing or not of type {kind.__name__}")
    return value


def object_or_empty(value: Any) -> dict[str, Any]:
    """Return value if it is a JSON object, else an empty one, for fields a cleanup may lack."""
    return value if isinstance(value, dict) else {}


def optional_login(parent: Any, key: str) -> str:
    """Return parent[key] if parent is an object and that is a valid login, else ""."""
    login = parent.get(key) if isinstance(parent, dict) else None
    return login if isinstance(login, str) and login_error(login) is None else ""


def is_from_fork(head_repository: Any, base_repository: dict[str, Any]) -> bool:
    """Return whether the head lives in another repository than the base.

    A missing head repository counts as a fork: GitHub sends head.repo null when the fork
    was deleted. Ids decide where both repositories have one, else full names. head.repo.fork
    describes the repository (true for any fork, even for a pull request within it), so it
    decides nothing.
    """
    if not isinstance(head_repository, dict):
        return True
    if "id" in head_repository and "id" in base_repository:
        return bool(head_repository["id"] != base_repository["id"])
    return bool(head_repository.get("full_name") != base_repository.get("full_name"))


def first_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """Return the first non-empty value of the headers in names, matched case-insensitively."""
    values: dict[str, str] = {}
    for name, value in headers.items():
        # The first of repeated headers wins, as with Starlette's Headers.get.
        values.setdefault(name.lower(), value)
    for name in names:
        found = values.get(name.lower())
        if found:
            return found
    return None


def header_bytes(value: str) -> bytes:
    """Return the bytes a header value was sent as, for comparisons with compare_digest.

    Starlette decodes header bytes as Latin-1, so encoding as Latin-1 gives them back.
    Other text (a caller's str with characters above U+00FF) is encoded as UTF-8, and
    surrogatepass keeps a lone surrogate from raising.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")
