"""Shared parts of the forge reporters: one HTTP client with timeouts, a guard that keeps
every error inside the reporter, and the comment that is created once and edited in place."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

import httpx2

from bridge.models import SHA
from bridge.report.comment import Phase, marker, render
from bridge.report.model import PreviewReport

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
USER_AGENT = "pr-previews"
PAGE_SIZE = 100
# Bounds the time one report can take. A preview comment that is not among the first
# MAX_PAGES * PAGE_SIZE comments is not found, and a second one is created.
MAX_PAGES = 50
MAX_ERROR_TEXT = 200
MAX_DESCRIPTION = 140

Step = tuple[str, Callable[[], None]]


class ForgeResponseError(Exception):
    """The forge returned an unexpected status code. message is the forge's error text."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path} returned {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Comment:
    """A comment or note as listed by the forge."""

    id: int
    body: str
    author: str


class ForgeReporter(abc.ABC):
    """Base of the reporters: subclasses add the forge's status calls and comment endpoints.

    One instance can serve several threads. Its caches (comment ids and the account's own
    login) only save calls: a new instance finds the same comment again by its marker.
    """

    def __init__(self, base_url: str, timeout: float, auth: httpx2.Auth, headers: dict[str, str]):
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"API base URL must start with https:// or http://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._http = httpx2.Client(
            base_url=self.base_url,
            auth=auth,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=httpx2.Timeout(timeout),
            follow_redirects=False,
        )
        self._lock = threading.Lock()
        self._comment_ids: dict[tuple[str, int, str], int] = {}
        self._login: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The forge-specific part.

    @abc.abstractmethod
    def _fetch_login(self) -> str:
        """Return the login of the account that the reporter writes as."""

    @abc.abstractmethod
    def _list_comments(self, preview: PreviewReport) -> Iterable[Comment]: ...

    @abc.abstractmethod
    def _create_comment(self, preview: PreviewReport, body: str) -> int: ...

    @abc.abstractmethod
    def _edit_comment(self, preview: PreviewReport, comment_id: int, body: str) -> None: ...

    def _secrets(self) -> Iterable[str]:
        """Return the credentials in use, so that no log line can show them."""
        return ()

    # HTTP.

    def _call(
        self,
        method: str,
        path: str,
        *,
        expect: Sequence[int],
        json: dict[str, Any] | None = None,
        params: dict[str, str | int] | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.Response:
        """Send one API call; auth replaces the client's authentication for this call."""
        if auth is None:
            response = self._http.request(method, path, json=json, params=params)
        else:
            response = self._http.request(method, path, json=json, params=params, auth=auth)
        if response.status_code not in expect:
            raise ForgeResponseError(method, path, response.status_code, error_text(response))
        return response

    def _pages(
        self, path: str, params: dict[str, str | int], has_next: Callable[[httpx2.Response], bool]
    ) -> Iterator[list[Any]]:
        """Yield the JSON lists of a paginated listing, page by page, up to MAX_PAGES."""
        for page in range(1, MAX_PAGES + 1):
            response = self._call("GET", path, expect=(200,), params={**params, "page": page})
            items = response.json()
            if not isinstance(items, list):
                raise ValueError(f"GET {path} returned {type(items).__name__}, expected a list")
            yield items
            if not items or not has_next(response):
                return
        logger.warning("GET %s has more than %s pages; the rest is not read", path, MAX_PAGES)

    # The guard around every report.

    def _report(self, event: str, preview: PreviewReport, steps: Sequence[Step]) -> None:
        """Run the steps of one report in order, logging every error instead of raising it.

        A step that the forge rejects does not stop the next one. A step that cannot reach
        the forge (timeout, refused connection) ends the report, because the next step
        would wait for the same timeout.
        """
        for name, step in steps:
            try:
                step()
            except httpx2.TransportError as error:
                self._log_failure(event, preview, name, error, "forge unreachable, report ended")
                return
            except Exception as error:
                # A forge outage must not fail a deploy, so even an unexpected error
                # (an odd response shape, a bug here) is logged, not raised.
                self._log_failure(event, preview, name, error, "next step")

    def _log_failure(
        self, event: str, preview: PreviewReport, step: str, error: Exception, then: str
    ) -> None:
        logger.warning(
            "reporting %s of %s (run %s) to %s failed at %s: %s; %s",
            event,
            preview.preview_id,
            preview.run or "-",
            self.base_url,
            step,
            self._redact(f"{type(error).__name__}: {error}"),
            then,
        )

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "***")
        return text

    # The comment.

    def _comment_step(self, preview: PreviewReport, phase: Phase, reason: str = "") -> Step:
        return ("comment", lambda: self._write_comment(preview, render(preview, phase, reason)))

    def _write_comment(self, preview: PreviewReport, body: str) -> None:
        """Edit the preview's comment in place, or create it if there is none yet."""
        key = (preview.repository, preview.number, preview.preview_id)
        with self._lock:
            comment_id = self._comment_ids.get(key)
        if comment_id is not None and self._try_edit(preview, comment_id, body):
            return

        found = self._find_comment(preview)
        if found is not None and self._try_edit(preview, found, body):
            comment_id = found
        else:
            comment_id = self._create_comment(preview, body)
        with self._lock:
            self._comment_ids[key] = comment_id

    def _try_edit(self, preview: PreviewReport, comment_id: int, body: str) -> bool:
        """Edit a comment; return False if it no longer exists (someone deleted it)."""
        try:
            self._edit_comment(preview, comment_id, body)
        except ForgeResponseError as error:
            if error.status != 404:
                raise
            logger.info(
                "comment %s of %s is gone; looking for another", comment_id, preview.preview_id
            )
            return False
        return True

    def _find_comment(self, preview: PreviewReport) -> int | None:
        """Return the id of the preview's comment: the first that starts with its marker and
        was written by this reporter's account, so that a copied marker is ignored."""
        expected = marker(preview.preview_id)
        login = self._own_login()
        for comment in self._list_comments(preview):
            if comment.author == login and comment.body.startswith(expected):
                return comment.id
        return None

    def _own_login(self) -> str:
        with self._lock:
            if self._login is not None:
                return self._login
        login = self._fetch_login()
        with self._lock:
            self._login = login
        return login


def error_text(response: httpx2.Response) -> str:
    """Return the forge's error message from a response, shortened for a log line."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:MAX_ERROR_TEXT]
    if isinstance(payload, dict) and "message" in payload:
        return str(payload["message"])[:MAX_ERROR_TEXT]
    return str(payload)[:MAX_ERROR_TEXT]


def description(text: str) -> str:
    """Shorten a status description to the 140 characters that GitHub accepts."""
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def checked_sha(preview: PreviewReport) -> str:
    """Return the preview's SHA, or raise ValueError if it is no full commit id."""
    if not SHA.fullmatch(preview.sha):
        raise ValueError(
            f"sha must be 40 or 64 lowercase hexadecimal characters, got {preview.sha!r}"
        )
    return preview.sha


def checked_number(preview: PreviewReport) -> int:
    """Return the pull or merge request number, or raise ValueError if it is not positive."""
    if preview.number < 1:
        raise ValueError(f"pull or merge request number must be positive, got {preview.number}")
    return preview.number
