"""The data a reporter receives about a preview, and the interface of every forge reporter."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviewReport:
    """One preview at one commit, as the forge should show it.

    repository is "owner/name" on GitHub and Gitea, and the project path ("group/name")
    or numeric project id on GitLab. number is the pull or merge request number (GitLab's
    iid). urls maps a service name to its URL, the primary service first. The URLs and
    log_url must carry no access token; a reporter still drops their query strings, because
    a preview's token travels as ?token= and must never reach a forge.
    """

    repository: str
    number: int
    sha: str
    preview_id: str
    urls: dict[str, str] = field(default_factory=dict)
    log_url: str = ""
    run: str = ""

    @property
    def primary_url(self) -> str:
        """URL of the first service, or "" when the preview has none."""
        return next(iter(self.urls.values()), "")


class Reporter(Protocol):
    """Reports a preview's lifecycle back to the forge.

    No method raises: a forge that is down, slow or rejects a call must not fail a deploy,
    so every error is logged instead.
    """

    def deploy_started(self, preview: PreviewReport) -> None: ...

    def deploy_finished(self, preview: PreviewReport, succeeded: bool) -> None: ...

    def cleanup_finished(self, preview: PreviewReport) -> None: ...

    def blocked(self, preview: PreviewReport, reason: str) -> None: ...


class NullReporter:
    """A reporter for a bridge with no forge to report to: it only logs at debug level."""

    def deploy_started(self, preview: PreviewReport) -> None:
        logger.debug("no forge configured: deploy of %s started", preview.preview_id)

    def deploy_finished(self, preview: PreviewReport, succeeded: bool) -> None:
        logger.debug(
            "no forge configured: deploy of %s finished, ok=%s", preview.preview_id, succeeded
        )

    def cleanup_finished(self, preview: PreviewReport) -> None:
        logger.debug("no forge configured: %s removed", preview.preview_id)

    def blocked(self, preview: PreviewReport, reason: str) -> None:
        logger.debug("no forge configured: %s blocked: %s", preview.preview_id, reason)
