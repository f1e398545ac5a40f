"""Reports to GitLab: a commit status per preview, and one merge-request note."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from urllib.parse import quote

import httpx2
from pydantic import BaseModel

from bridge.report.base import (
    DEFAULT_TIMEOUT,
    PAGE_SIZE,
    Comment,
    ForgeReporter,
    ForgeResponseError,
    Step,
    checked_number,
    checked_sha,
    description,
)
from bridge.report.comment import SHORT_SHA_LENGTH, Phase, token_free
from bridge.report.model import PreviewReport

logger = logging.getLogger(__name__)

GITLAB_API_URL = "https://gitlab.com/api/v4"
STATUS_NAME_PREFIX = "pr-previews"
# GitLab returns 400 with this message when a status is set to the running or pending
# state it already has. The status then already shows what the call meant to set.
SAME_STATE_MESSAGE = "Cannot transition status via"


class _User(BaseModel):
    username: str


class _Note(BaseModel):
    id: int
    body: str | None = None
    author: _User | None = None
    system: bool = False


class PrivateToken(httpx2.Auth):
    """Sends an access token in GitLab's PRIVATE-TOKEN header."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the API token is empty")
        self.token = token

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["PRIVATE-TOKEN"] = self.token
        yield request


class GitLabReporter(ForgeReporter):
    """Reports to GitLab.com or a self-managed GitLab with a personal, project or group
    access token (scope api).

    base_url is the API root, https://HOST/api/v4. timeout is in seconds per call. The
    commit status is named "pr-previews/<preview id>": running, then success or failed,
    and canceled once the preview is removed.
    """

    def __init__(
        self, *, token: str, base_url: str = GITLAB_API_URL, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._auth = PrivateToken(token)
        super().__init__(base_url, timeout, self._auth, {"Accept": "application/json"})

    # Reporter.

    def deploy_started(self, preview: PreviewReport) -> None:
        self._report(
            "deploy started",
            preview,
            [
                self._status_step(preview, "running", preview.log_url, "Deploying"),
                self._comment_step(preview, Phase.DEPLOYING),
            ],
        )

    def deploy_finished(self, preview: PreviewReport, succeeded: bool) -> None:
        if succeeded:
            status = self._status_step(preview, "success", preview.primary_url, "Deployed")
        else:
            status = self._status_step(preview, "failed", preview.log_url, "Deploy failed")
        phase = Phase.DEPLOYED if succeeded else Phase.FAILED
        self._report("deploy finished", preview, [status, self._comment_step(preview, phase)])

    def cleanup_finished(self, preview: PreviewReport) -> None:
        self._report(
            "cleanup finished",
            preview,
            [
                self._status_step(preview, "canceled", preview.log_url, "Removed"),
                self._comment_step(preview, Phase.REMOVED),
            ],
        )

    def blocked(self, preview: PreviewReport, reason: str) -> None:
        # A pending status could hold back a merge in a project that requires pipelines
        # to succeed, so a blocked preview gets only the note.
        self._report("blocked", preview, [self._comment_step(preview, Phase.BLOCKED, reason)])

    # Commit status.

    def _status_step(
        self, preview: PreviewReport, state: str, target_url: str, summary: str
    ) -> Step:
        def post() -> None:
            body = {
                "state": state,
                "name": f"{STATUS_NAME_PREFIX}/{preview.preview_id}",
                "target_url": token_free(target_url),
                "description": description(f"{summary} {preview.sha[:SHORT_SHA_LENGTH]}"),
            }
            path = f"{_project(preview)}/statuses/{checked_sha(preview)}"
            try:
                self._call("POST", path, expect=(201,), json=body)
            except ForgeResponseError as error:
                if error.status != 400 or SAME_STATE_MESSAGE not in error.message:
                    raise
                logger.info("status of %s is already %s", preview.preview_id, state)

        return ("commit status", post)

    # Notes.

    def _list_comments(self, preview: PreviewReport) -> Iterator[Comment]:
        path = f"{_project(preview)}/merge_requests/{checked_number(preview)}/notes"
        params: dict[str, str | int] = {
            "per_page": PAGE_SIZE,
            "sort": "asc",
            "order_by": "created_at",
        }
        for page in self._pages(path, params, _has_next_page):
            for item in page:
                note = _Note.model_validate(item)
                if note.system:
                    continue
                author = note.author.username if note.author else ""
                yield Comment(note.id, note.body or "", author)

    def _create_comment(self, preview: PreviewReport, body: str) -> int:
        path = f"{_project(preview)}/merge_requests/{checked_number(preview)}/notes"
        response = self._call("POST", path, expect=(201,), json={"body": body})
        return _Note.model_validate(response.json()).id

    def _edit_comment(self, preview: PreviewReport, comment_id: int, body: str) -> None:
        path = f"{_project(preview)}/merge_requests/{checked_number(preview)}/notes/{comment_id}"
        self._call("PUT", path, expect=(200,), json={"body": body})

    def _fetch_login(self) -> str:
        return _User.model_validate(self._call("GET", "/user", expect=(200,)).json()).username

    def _secrets(self) -> list[str]:
        return [self._auth.token]


def _project(preview: PreviewReport) -> str:
    """Return the project's API path: a numeric id as it is, a path URL-encoded whole,
    because GitLab reads "group/sub/name" only as group%2Fsub%2Fname."""
    project = preview.repository.strip()
    if not project or project.startswith("/") or project.endswith("/"):
        raise ValueError(
            f"repository must be a project path or numeric id, got {preview.repository!r}"
        )
    return f"/projects/{quote(project, safe='')}"


def _has_next_page(response: httpx2.Response) -> bool:
    return bool(response.headers.get("X-Next-Page"))
