"""Reports to GitHub: a deployment per preview environment, and one pull-request comment.

Each deploy creates a transient deployment of the head SHA in the preview's environment
and moves it through in_progress to success or failure. A cleanup marks the environment's
deployments inactive, which GitHub shows as destroyed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx2
from pydantic import BaseModel

from bridge.models import REPOSITORY
from bridge.report.base import (
    DEFAULT_TIMEOUT,
    PAGE_SIZE,
    Comment,
    ForgeReporter,
    checked_number,
    checked_sha,
    description,
)
from bridge.report.comment import SHORT_SHA_LENGTH, Phase, token_free
from bridge.report.github_app import (
    GITHUB_HEADERS,
    AppJwt,
    BearerToken,
    GitHubApp,
    InstallationToken,
)
from bridge.report.model import PreviewReport

GITHUB_API_URL = "https://api.github.com"


class _User(BaseModel):
    login: str


class _IssueComment(BaseModel):
    id: int
    body: str | None = None
    user: _User | None = None


class _App(BaseModel):
    slug: str


class _Deployment(BaseModel):
    id: int


class _DeploymentStatus(BaseModel):
    state: str


class GitHubReporter(ForgeReporter):
    """Reports to GitHub or GitHub Enterprise Server as a token's owner or as a GitHub App.

    Give exactly one of token (a personal access token or an installation token that
    something else renews) and app. base_url is the API root: https://api.github.com, or
    https://HOST/api/v3 for GitHub Enterprise Server. timeout is in seconds per call.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        app: GitHubApp | None = None,
        base_url: str = GITHUB_API_URL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if (token is None) == (app is None):
            raise ValueError("GitHubReporter needs either a token or a GitHub App, not both")
        self._app_jwt: AppJwt | None = None
        auth: BearerToken | InstallationToken
        if app is not None:
            auth = InstallationToken(app, base_url)
            self._app_jwt = AppJwt(app)
        else:
            auth = BearerToken(token or "")
        super().__init__(base_url, timeout, auth, GITHUB_HEADERS)
        self._auth = auth
        self._deployments: dict[tuple[str, str, str], int] = {}
        self._deployments_lock = threading.Lock()

    # Reporter.

    def deploy_started(self, preview: PreviewReport) -> None:
        self._report(
            "deploy started",
            preview,
            [
                ("deployment", lambda: self._start_deployment(preview)),
                self._comment_step(preview, Phase.DEPLOYING),
            ],
        )

    def deploy_finished(self, preview: PreviewReport, succeeded: bool) -> None:
        status = _success_status(preview) if succeeded else _failure_status(preview)
        phase = Phase.DEPLOYED if succeeded else Phase.FAILED
        self._report(
            "deploy finished",
            preview,
            [
                ("deployment status", lambda: self._finish_deployment(preview, status)),
                self._comment_step(preview, phase),
            ],
        )

    def cleanup_finished(self, preview: PreviewReport) -> None:
        self._report(
            "cleanup finished",
            preview,
            [
                ("deactivate deployments", lambda: self._deactivate(preview)),
                self._comment_step(preview, Phase.REMOVED),
            ],
        )

    def blocked(self, preview: PreviewReport, reason: str) -> None:
        # Nothing is deployed, so there is no deployment to show, and the comment explains why.
        self._report("blocked", preview, [self._comment_step(preview, Phase.BLOCKED, reason)])

    # Deployments.

    def _start_deployment(self, preview: PreviewReport) -> None:
        deployment_id = self._create_deployment(preview)
        status = {
            "state": "in_progress",
            "log_url": token_free(preview.log_url),
            "description": description(f"Deploying {preview.sha[:SHORT_SHA_LENGTH]}"),
        }
        self._post_status(preview, deployment_id, status)

    def _finish_deployment(self, preview: PreviewReport, status: dict[str, Any]) -> None:
        deployment_id = self._cached_deployment(preview) or self._find_deployment(preview)
        if deployment_id is None:
            # The start was never reported (the forge was down then): report it now.
            deployment_id = self._create_deployment(preview)
        self._post_status(preview, deployment_id, status)

    def _create_deployment(self, preview: PreviewReport) -> int:
        body = {
            "ref": checked_sha(preview),
            "environment": preview.preview_id,
            "description": description(f"Preview {preview.preview_id}"),
            "auto_merge": False,
            # Preview deploys run before any check has finished; none may hold them back.
            "required_contexts": [],
            "transient_environment": True,
            "production_environment": False,
        }
        response = self._call("POST", f"{_repo(preview)}/deployments", expect=(201,), json=body)
        deployment_id = _Deployment.model_validate(response.json()).id
        with self._deployments_lock:
            self._deployments[_deployment_key(preview)] = deployment_id
        return deployment_id

    def _cached_deployment(self, preview: PreviewReport) -> int | None:
        with self._deployments_lock:
            return self._deployments.get(_deployment_key(preview))

    def _find_deployment(self, preview: PreviewReport) -> int | None:
        """Return the newest deployment of this SHA in the preview's environment, if any."""
        params: dict[str, str | int] = {
            "sha": checked_sha(preview),
            "environment": preview.preview_id,
            "per_page": 1,
        }
        response = self._call("GET", f"{_repo(preview)}/deployments", expect=(200,), params=params)
        items = response.json()
        if not isinstance(items, list) or not items:
            return None
        return _Deployment.model_validate(items[0]).id

    def _post_status(
        self, preview: PreviewReport, deployment_id: int, status: dict[str, Any]
    ) -> None:
        path = f"{_repo(preview)}/deployments/{deployment_id}/statuses"
        self._call("POST", path, expect=(201,), json=status)

    def _deactivate(self, preview: PreviewReport) -> None:
        """Mark every deployment of the preview's environment inactive that is not already."""
        inactive = {
            "state": "inactive",
            "description": description(f"Preview {preview.preview_id} removed"),
        }
        for deployment_id in list(self._environment_deployments(preview)):
            if self._latest_state(preview, deployment_id) != "inactive":
                self._post_status(preview, deployment_id, inactive)
        with self._deployments_lock:
            for key in [
                key for key in self._deployments if key[:2] == _deployment_key(preview)[:2]
            ]:
                del self._deployments[key]

    def _environment_deployments(self, preview: PreviewReport) -> Iterator[int]:
        params: dict[str, str | int] = {"environment": preview.preview_id, "per_page": PAGE_SIZE}
        for page in self._pages(f"{_repo(preview)}/deployments", params, _has_next_link):
            for item in page:
                yield _Deployment.model_validate(item).id

    def _latest_state(self, preview: PreviewReport, deployment_id: int) -> str | None:
        path = f"{_repo(preview)}/deployments/{deployment_id}/statuses"
        items = self._call("GET", path, expect=(200,), params={"per_page": 1}).json()
        if not isinstance(items, list) or not items:
            return None
        return _DeploymentStatus.model_validate(items[0]).state

    # Comments: a pull request's conversation comments are its issue's comments.

    def _list_comments(self, preview: PreviewReport) -> Iterator[Comment]:
        path = f"{_repo(preview)}/issues/{checked_number(preview)}/comments"
        for page in self._pages(path, {"per_page": PAGE_SIZE}, _has_next_link):
            for item in page:
                comment = _IssueComment.model_validate(item)
                author = comment.user.login if comment.user else ""
                yield Comment(comment.id, comment.body or "", author)

    def _create_comment(self, preview: PreviewReport, body: str) -> int:
        path = f"{_repo(preview)}/issues/{checked_number(preview)}/comments"
        response = self._call("POST", path, expect=(201,), json={"body": body})
        return _IssueComment.model_validate(response.json()).id

    def _edit_comment(self, preview: PreviewReport, comment_id: int, body: str) -> None:
        path = f"{_repo(preview)}/issues/comments/{comment_id}"
        self._call("PATCH", path, expect=(200,), json={"body": body})

    def _fetch_login(self) -> str:
        if self._app_jwt is None:
            return _User.model_validate(self._call("GET", "/user", expect=(200,)).json()).login
        # An App comments as its bot account, "<slug>[bot]"; /user is closed to App tokens.
        response = self._call("GET", "/app", expect=(200,), auth=self._app_jwt)
        return f"{_App.model_validate(response.json()).slug}[bot]"

    def _secrets(self) -> list[str]:
        if isinstance(self._auth, BearerToken):
            return [self._auth.token]
        return [self._auth.current or ""]


def _success_status(preview: PreviewReport) -> dict[str, Any]:
    return {
        "state": "success",
        "environment_url": token_free(preview.primary_url),
        "log_url": token_free(preview.log_url),
        "description": description(f"Deployed {preview.sha[:SHORT_SHA_LENGTH]}"),
        # Marks the environment's earlier successful deployments inactive.
        "auto_inactive": True,
    }


def _failure_status(preview: PreviewReport) -> dict[str, Any]:
    return {
        "state": "failure",
        "log_url": token_free(preview.log_url),
        "description": description(f"Deploy of {preview.sha[:SHORT_SHA_LENGTH]} failed"),
    }


def _repo(preview: PreviewReport) -> str:
    if not REPOSITORY.fullmatch(preview.repository):
        raise ValueError(f"repository must be owner/name, got {preview.repository!r}")
    return f"/repos/{preview.repository}"


def _deployment_key(preview: PreviewReport) -> tuple[str, str, str]:
    return (preview.repository, preview.preview_id, preview.sha)


def _has_next_link(response: httpx2.Response) -> bool:
    return "next" in response.links
