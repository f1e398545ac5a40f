"""The bridge's run queue: durable, one run at a time per preview, a global limit on runs.

Every request is written to the intake before submit returns, so the bridge answers 202
only for requests that survive a restart. A newer request of a preview replaces its
pending one: ten pushes during a deploy cause one more run, of the last push.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from bridge.intake import Accepted, Intake, now
from bridge.models import PreviewRequest
from bridge.run_command import launch
from bridge.runner import new_ident
from bridge.settings import Settings

logger = logging.getLogger(__name__)

Launcher = Callable[[Settings, PreviewRequest, str], int]


class Listener(Protocol):
    """Told when a run starts and when it ends, with the run's exit status."""

    def run_started(self, accepted: Accepted) -> None: ...

    def run_finished(self, accepted: Accepted, status: int) -> None: ...


class RunQueue:
    """Runs accepted requests in worker threads, at most one per preview at a time.

    A worker runs one request and goes back to the pool, so a preview that keeps getting
    pushes never keeps the other previews waiting for a worker.
    """

    def __init__(
        self,
        settings: Settings,
        intake: Intake | None = None,
        launcher: Launcher = launch,
    ) -> None:
        self._settings = settings
        self.intake = intake or Intake(settings.state_dir)
        self._launch = launcher
        self._executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_runs, thread_name_prefix="run"
        )
        self._busy: set[int] = set()
        self._guard = threading.Lock()
        self._listeners: list[Listener] = []
        self._running: dict[int, Accepted] = {}

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def resume(self) -> list[int]:
        """Schedule what a stopped bridge had accepted and not finished; return the PRs."""
        with self._guard:
            self.intake.prepare()
            numbers = self.intake.recover(self._renew)
        for number in numbers:
            logger.info("resuming the accepted request of PR %s", number)
            self._schedule(number)
        return numbers

    def _renew(self, accepted: Accepted) -> Accepted:
        # The interrupted run may have left artifacts under its ident; the new run needs its own.
        return replace(accepted, ident=new_ident(self._settings, accepted.request))

    def submit(self, request: PreviewRequest) -> Accepted:
        """Persist the request and schedule its run; return it with its run's ident."""
        accepted = Accepted(request, new_ident(self._settings, request), now())
        with self._guard:
            replaced = self.intake.put(accepted)
        if replaced is not None:
            logger.info(
                "run %s of PR %s is replaced by %s before it started",
                replaced.ident,
                request.number,
                accepted.ident,
            )
        self._schedule(request.number)
        return accepted

    def queued(self) -> dict[int, Accepted]:
        """Return the requests waiting or running, by PR, as one consistent snapshot.

        A worker moves a request from pending to running under the guard, so a reader
        outside it could see the request in neither place.
        """
        with self._guard:
            waiting = {accepted.request.number: accepted for accepted in self.intake.pending()}
            return {**waiting, **self._running}

    def idle(self) -> bool:
        """Return whether no run is in progress or waiting."""
        with self._guard:
            return not self._busy and not self.intake.pending()

    def shutdown(self) -> None:
        """Stop taking requests; pending ones stay in the intake for the next start."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _schedule(self, number: int) -> None:
        with self._guard:
            if number in self._busy:
                # The worker of this preview takes the pending request when its run ends.
                return
            self._busy.add(number)
        try:
            self._executor.submit(self._run_next, number)
        except RuntimeError:
            # Shutting down: the request stays pending for the next start.
            with self._guard:
                self._busy.discard(number)

    def _run_next(self, number: int) -> None:
        with self._guard:
            accepted = self.intake.take(number)
            if accepted is None:
                self._busy.discard(number)
                return
            self._running[number] = accepted

        self._tell(lambda listener: listener.run_started(accepted), accepted)
        status = self._run(accepted)

        with self._guard:
            self.intake.finish(number)
            del self._running[number]
            self._busy.discard(number)
        self._tell(lambda listener: listener.run_finished(accepted, status), accepted)
        self._schedule(number)

    def _tell(self, call: Callable[[Listener], None], accepted: Accepted) -> None:
        for listener in self._listeners:
            try:
                call(listener)
            except Exception:
                # A listener reports; its failure must not stop the preview's queue.
                logger.exception("a listener failed on run %s", accepted.ident)

    def _run(self, accepted: Accepted) -> int:
        request, ident = accepted.request, accepted.ident
        logger.info("run %s started: %s of PR %s", ident, request.action, request.number)
        try:
            status = self._launch(self._settings, request, ident)
        except Exception:
            # The worker must go on to clear the preview's busy mark, whatever failed.
            logger.exception("run %s could not be started", ident)
            return -1
        logger.info("run %s finished with exit status %s", ident, status)
        return status
