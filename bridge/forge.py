"""What every forge adapter turns a webhook body into, whatever the forge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bridge.models import PreviewRequest


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
