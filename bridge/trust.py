"""The trust policy: which pull-request events may start a run without a maintainer.

A deploy builds and runs the pull request's code on the host, so it needs a reason to
trust that code: the head lives in the base repository and its author's association is
in the allow list, or a maintainer approved this exact SHA. A cleanup only removes
things and is always allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.forge import Ignored, PullRequestEvent
from bridge.models import PreviewRequest
from bridge.settings import Settings


@dataclass(frozen=True)
class Run:
    """The event may start this request's run."""

    request: PreviewRequest
    approved_by: str = ""


@dataclass(frozen=True)
class Hold:
    """The event's request waits for an approval of its SHA; reason says why."""

    request: PreviewRequest
    reason: str


def decide(
    event: PullRequestEvent, settings: Settings, served_sha: Callable[[], str]
) -> Run | Hold | Ignored:
    """Decide what an event starts. served_sha returns the SHA the preview serves now, or
    "": a SHA that was deployed once was trusted or approved then. It reads the registry,
    so it is called only for a request that is not trusted on its own."""
    request = event.request
    if request.action == "cleanup":
        return Run(request)
    if event.label is not None:
        return _label(event, settings)

    reason = _distrust(event, settings)
    if reason is None:
        return Run(request)
    if request.sha == served_sha():
        return Run(request, approved_by="an earlier approval of this SHA")
    return Hold(request, reason)


def _distrust(event: PullRequestEvent, settings: Settings) -> str | None:
    if event.from_fork:
        return (
            "comes from another repository than the base (a fork, or a deleted one); "
            f"approve SHA {event.request.sha} to deploy it"
        )
    # A forge that states no association (Gitea, GitLab) leaves trust to the fork rule:
    # pushing a branch to the base repository already takes write access there.
    association = event.association
    if association is not None and association not in settings.allowed_associations:
        shown = association or "none"
        return (
            f"author association {shown} is not in the allow list "
            f"({', '.join(sorted(settings.allowed_associations))}); "
            f"approve SHA {event.request.sha} to deploy it"
        )
    return None


def _label(event: PullRequestEvent, settings: Settings) -> Run | Ignored:
    """A label event approves the head SHA it names, if it is the approval label and the
    sender may approve. The forge lets only users with triage or write access add labels."""
    if event.label != settings.approval_label:
        return Ignored(f"label {event.label!r} is not the approval label")
    if settings.approvers and event.sender not in settings.approvers:
        return Ignored(f"{event.sender or 'the sender'} is not in the approvers list")
    return Run(event.request, approved_by=event.sender or "label")
