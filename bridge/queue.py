"""The bridge's run queue: worker threads that start runs through the run command."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from bridge.models import PreviewRequest
from bridge.run_command import launch
from bridge.runner import new_ident
from bridge.settings import Settings

logger = logging.getLogger(__name__)


class RunQueue:
    """Runs requests in worker threads: one run at a time per preview, a global limit overall.

    TODO: persist requests before they are accepted and let a newer request replace a
    pending one of the same preview; until then a restart loses the requests still queued.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_runs, thread_name_prefix="run"
        )
        self._locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def submit(self, request: PreviewRequest) -> tuple[str, Future[int]]:
        """Queue the request and return the ident its run will have."""
        ident = new_ident(self._settings, request)
        future = self._executor.submit(self._run, request, ident)
        return ident, future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)

    def _run(self, request: PreviewRequest, ident: str) -> int:
        with self._locks_guard:
            lock = self._locks.setdefault(request.number, threading.Lock())
        with lock:
            logger.info("run %s started: %s of PR %s", ident, request.action, request.number)
            try:
                status = launch(self._settings, request, ident)
            except OSError:
                logger.exception("run %s could not be started", ident)
                raise
            logger.info("run %s finished with exit status %s", ident, status)
            return status
