"""Report each run of the queue back to the forge, on a thread of its own.

Forge calls wait on the network, so they run one at a time on a worker thread: the
webhook's answer and the next run never wait for them, and a preview's reports keep
their order. Success is reported only when the run succeeded, which means every
service passed its health check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bridge import registry
from bridge.intake import Accepted
from bridge.models import PreviewRequest
from bridge.report import PreviewReport, Reporter
from bridge.settings import Settings

logger = logging.getLogger(__name__)


class ForgeReports:
    """A queue listener that turns run events into forge reports."""

    def __init__(self, settings: Settings, reporter: Reporter) -> None:
        self._settings = settings
        self._reporter = reporter
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")

    def run_started(self, accepted: Accepted) -> None:
        if accepted.request.action == "deploy":
            self._submit(self._reporter.deploy_started, accepted.request, accepted.ident)

    def run_finished(self, accepted: Accepted, status: int) -> None:
        request, ident = accepted.request, accepted.ident
        if request.action == "deploy":
            self._submit(self._finished, request, ident, status == 0)
        elif status == 0:
            self._submit(self._reporter.cleanup_finished, request, ident)

    def blocked(self, request: PreviewRequest, reason: str) -> None:
        self._submit(self._blocked, request, "", reason)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=True)

    def _submit(
        self, method: Callable[..., None], request: PreviewRequest, ident: str, *args: object
    ) -> None:
        try:
            self._worker.submit(self._call, method, request, ident, *args)
        except RuntimeError:
            logger.warning("not reporting run %s: the bridge is stopping", ident or "-")

    def _call(
        self, method: Callable[..., None], request: PreviewRequest, ident: str, *args: object
    ) -> None:
        try:
            method(self.preview_report(request, ident), *args)
        except Exception:
            # Reporters log their own errors; this catches a bug, which must not stop the worker.
            logger.exception("reporting run %s of PR %s failed", ident or "-", request.number)

    def _finished(self, preview: PreviewReport, succeeded: bool) -> None:
        self._reporter.deploy_finished(preview, succeeded)

    def _blocked(self, preview: PreviewReport, reason: str) -> None:
        self._reporter.blocked(preview, reason)

    def preview_report(self, request: PreviewRequest, ident: str) -> PreviewReport:
        """Describe the preview for the forge: its URLs as the registry has them, and
        the URL of this run's redacted log, all without a token."""
        preview_id = self._settings.preview_id(request.number)
        preview = registry.current(self._settings.runner_dir).get(preview_id)
        urls = dict(preview.urls) if preview is not None else {}
        return PreviewReport(
            repository=request.repository,
            number=request.number,
            sha=request.sha or "",
            preview_id=preview_id,
            urls=urls,
            # A cleanup removes the preview's logs together with its vhost.
            log_url=self._log_url(urls, ident) if request.action == "deploy" else "",
            run=ident,
        )

    def _log_url(self, urls: dict[str, str], ident: str) -> str:
        """Return the log's URL: as the run recorded it, else beside the primary URL."""
        if not ident:
            return ""
        folder = self._settings.runner_dir / "artifacts" / ident
        try:
            run = registry.read_run(folder)
        except OSError:
            run = None
        if run is not None and run.facts.get("log_url"):
            return str(run.facts["log_url"])
        primary = next(iter(urls.values()), "")
        return f"{primary}_previews/logs/{ident}.txt" if primary else ""
