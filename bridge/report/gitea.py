"""Reports to Gitea and Forgejo: a commit status per preview, and one pull-request comment."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from urllib.parse import quote

import httpx2
from pydantic import BaseModel

from bridge.report.base import (
    DEFAULT_TIMEOUT,
    Comment,
    ForgeReporter,
    Step,
    checked_number,
    checked_sha,
    description,
)
from bridge.report.comment import SHORT_SHA_LENGTH, Phase, token_free
from bridge.report.model import PreviewReport

STATUS_CONTEXT_PREFIX = "pr-previews"


class _User(BaseModel):
    login: str


class _Comment(BaseModel):
    id: int
    body: str | None = None
    user: _User | None = None


class GiteaToken(httpx2.Auth):
    """Sends an access token as Authorization: token, the scheme Gitea documents."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the API token is empty")
        self.token = token

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"token {self.token}"
        yield request


class GiteaReporter(ForgeReporter):
    """Reports to a Gitea or Forgejo server with an access token.

    base_url is the API root, https://HOST/api/v1. timeout is in seconds per call. The
    commit status is named "pr-previews/<preview id>". Gitea has no state for "removed",
    so a cleanup leaves the status as it was and only edits the comment.
    """

    def __init__(self, *, base_url: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._auth = GiteaToken(token)
        super().__init__(base_url, timeout, self._auth, {"Accept": "application/json"})

    # Reporter.

    def deploy_started(self, preview: PreviewReport) -> None:
        # Gitea's states are pending, success, error, failure and warning: no "running".
        self._report(
            "deploy started",
            preview,
            [
                self._status_step(preview, "pending", preview.log_url, "Deploying"),
                self._comment_step(preview, Phase.DEPLOYING),
            ],
        )

    def deploy_finished(self, preview: PreviewReport, succeeded: bool) -> None:
        if succeeded:
            status = self._status_step(preview, "success", preview.primary_url, "Deployed")
        else:
            status = self._status_step(preview, "failure", preview.log_url, "Deploy failed")
        phase = Phase.DEPLOYED if succeeded else Phase.FAILED
        self._report("deploy finished", preview, [status, self._comment_step(preview, phase)])

    def cleanup_finished(self, preview: PreviewReport) -> None:
        self._report("cleanup finished", preview, [self._comment_step(preview, Phase.REMOVED)])

    def blocked(self, preview: PreviewReport, reason: str) -> None:
        # A pending status could hold back a merge in a repository that requires checks,
        # so a blocked preview gets only the comment.
        self._report("blocked", preview, [self._comment_step(preview, Phase.BLOCKED, reason)])

    # Commit status.

    def _status_step(
        self, preview: PreviewReport, state: str, target_url: str, summary: str
    ) -> Step:
        def post() -> None:
            body = {
                "state": state,
                "target_url": token_free(target_url),
                "description": description(f"{summary} {preview.sha[:SHORT_SHA_LENGTH]}"),
                "context": f"{STATUS_CONTEXT_PREFIX}/{preview.preview_id}",
            }
            self._call(
                "POST",
                f"{_repo(preview)}/statuses/{checked_sha(preview)}",
                expect=(201,),
                json=body,
            )

        return ("commit status", post)

    # Comments.

    def _list_comments(self, preview: PreviewReport) -> Iterator[Comment]:
        # Gitea's issue comment listing has no page parameters (only since and before):
        # one response contains every comment.
        path = f"{_repo(preview)}/issues/{checked_number(preview)}/comments"
        items = self._call("GET", path, expect=(200,)).json()
        if not isinstance(items, list):
            raise ValueError(f"GET {path} returned {type(items).__name__}, expected a list")
        for item in items:
            comment = _Comment.model_validate(item)
            author = comment.user.login if comment.user else ""
            yield Comment(comment.id, comment.body or "", author)

    def _create_comment(self, preview: PreviewReport, body: str) -> int:
        path = f"{_repo(preview)}/issues/{checked_number(preview)}/comments"
        response = self._call("POST", path, expect=(201,), json={"body": body})
        return _Comment.model_validate(response.json()).id

    def _edit_comment(self, preview: PreviewReport, comment_id: int, body: str) -> None:
        # Gitea returns 204 without editing anything when the id is an event (a label
        # change, a push) rather than a comment, so only 200 counts.
        path = f"{_repo(preview)}/issues/comments/{comment_id}"
        self._call("PATCH", path, expect=(200,), json={"body": body})

    def _fetch_login(self) -> str:
        return _User.model_validate(self._call("GET", "/user", expect=(200,)).json()).login

    def _secrets(self) -> list[str]:
        return [self._auth.token]


def _repo(preview: PreviewReport) -> str:
    owner, slash, name = preview.repository.partition("/")
    if not owner or not slash or not name or "/" in name:
        raise ValueError(f"repository must be owner/name, got {preview.repository!r}")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
