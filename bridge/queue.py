"""The bridge's run queue: one run at a time per preview, a global limit on runs."""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from bridge.models import PreviewRequest
from bridge.run_command import launch
from bridge.runner import new_ident
from bridge.settings import Settings

logger = logging.getLogger(__name__)

Job = tuple[PreviewRequest, str, "Future[int]"]


class RunQueue:
    """Runs requests in worker threads, in order of arrival for each preview.

    A worker takes one run of one preview and then goes back to the pool, so a preview
    with many queued requests never keeps the other previews waiting for a worker.

    TODO: persist requests before they are accepted, so a restart of the bridge loses none,
    and let a newer request replace a pending one of the same preview.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_runs, thread_name_prefix="run"
        )
        self._jobs: dict[int, deque[Job]] = {}
        self._guard = threading.Lock()

    def submit(self, request: PreviewRequest) -> tuple[str, Future[int]]:
        """Queue the request; return the ident its run will have and its exit status."""
        ident = new_ident(self._settings, request)
        future: Future[int] = Future()
        with self._guard:
            jobs = self._jobs.get(request.number)
            if jobs is not None:
                # A run of this preview is queued or running; this one follows it.
                jobs.append((request, ident, future))
                return ident, future
            self._jobs[request.number] = deque([(request, ident, future)])
        self._executor.submit(self._run_next, request.number)
        return ident, future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run_next(self, number: int) -> None:
        with self._guard:
            request, ident, future = self._jobs[number][0]

        logger.info("run %s started: %s of PR %s", ident, request.action, request.number)
        try:
            status = launch(self._settings, request, ident)
        except OSError as error:
            logger.exception("run %s could not be started", ident)
            future.set_exception(error)
        else:
            logger.info("run %s finished with exit status %s", ident, status)
            future.set_result(status)

        with self._guard:
            jobs = self._jobs[number]
            jobs.popleft()
            if not jobs:
                del self._jobs[number]
                return
        self._executor.submit(self._run_next, number)
