"""A fake Gitea API (/api/v1): commit statuses and issue comments.

Checks the token (Authorization: token or Bearer, as Gitea accepts both), the
repository, pull request and commit, field types, and the status states that Gitea
supports. Like Gitea, it lists every comment of an issue in one response, and lets only a
comment's author edit it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import ApiError, Call, FakeApi, check_fields

STATUS_STATES = {"pending", "success", "error", "failure", "warning"}
REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"


@dataclass
class FakeGitea(FakeApi):
    """tokens maps an access token to its login; repositories, pulls and commits list
    what exists."""

    prefix: str = "/api/v1"
    tokens: dict[str, str] = field(default_factory=dict)
    repositories: set[str] = field(default_factory=set)
    pulls: set[tuple[str, int]] = field(default_factory=set)
    commits: set[str] = field(default_factory=set)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._next_id = 500
        self.route("GET", r"/user", self._get_user)
        self.route("POST", REPO + r"/statuses/(?P<sha>[^/]+)", self._create_status)
        self.route("GET", REPO + r"/issues/(?P<number>\d+)/comments", self._list_comments)
        self.route("POST", REPO + r"/issues/(?P<number>\d+)/comments", self._create_comment)
        self.route("PATCH", REPO + r"/issues/comments/(?P<comment>\d+)", self._edit_comment)

    def add_comment(self, repository: str, number: int, body: str, user: str) -> int:
        self._next_id += 1
        self.comments[self._next_id] = {
            "id": self._next_id,
            "repository": repository,
            "number": number,
            "body": body,
            "user": user,
        }
        return self._next_id

    def comments_on(self, repository: str, number: int) -> list[dict[str, Any]]:
        return [
            c
            for c in self.comments.values()
            if (c["repository"], c["number"]) == (repository, number)
        ]

    def authenticate(self, call: Call) -> str:
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or token not in self.tokens:
            raise ApiError(401, "token is required")
        return self.tokens[token]

    def _get_user(self, call: Call) -> tuple[int, Any]:
        return 200, {"id": 1, "login": call.user}

    def _repository(self, owner: str, name: str) -> str:
        repository = f"{owner}/{name}"
        if repository not in self.repositories:
            raise ApiError(404, "The target couldn't be found.")
        return repository

    def _create_status(self, call: Call, owner: str, name: str, sha: str) -> tuple[int, Any]:
        repository = self._repository(owner, name)
        body = check_fields(
            call.body,
            {"state": str},
            {"target_url": str, "description": str, "context": str},
        )
        if body["state"] not in STATUS_STATES:
            raise ApiError(422, f"invalid state {body['state']!r}")
        if sha not in self.commits:
            raise ApiError(404, "The target couldn't be found.")
        status = {"id": len(self.statuses) + 1, "repository": repository, "sha": sha, **body}
        self.statuses.append(status)
        return 201, {**status, "status": body["state"]}

    def _pull(self, owner: str, name: str, number: str) -> tuple[str, int]:
        key = (self._repository(owner, name), int(number))
        if key not in self.pulls:
            raise ApiError(404, "The target couldn't be found.")
        return key

    def _list_comments(self, call: Call, owner: str, name: str, number: str) -> tuple[int, Any]:
        repository, pull = self._pull(owner, name, number)
        ordered = sorted(self.comments_on(repository, pull), key=lambda c: c["id"])
        return 200, [_comment_json(c) for c in ordered]

    def _create_comment(self, call: Call, owner: str, name: str, number: str) -> tuple[int, Any]:
        repository, pull = self._pull(owner, name, number)
        body = check_fields(call.body, {"body": str})
        comment_id = self.add_comment(repository, pull, body["body"], call.user or "")
        return 201, _comment_json(self.comments[comment_id])

    def _edit_comment(self, call: Call, owner: str, name: str, comment: str) -> tuple[int, Any]:
        repository = self._repository(owner, name)
        found = self.comments.get(int(comment))
        if found is None or found["repository"] != repository:
            raise ApiError(404, "The target couldn't be found.")
        if found["user"] != call.user:
            raise ApiError(403, "Forbidden")
        body = check_fields(call.body, {"body": str})
        found["body"] = body["body"]
        return 200, _comment_json(found)


def _comment_json(comment: dict[str, Any]) -> dict[str, Any]:
    return {"id": comment["id"], "body": comment["body"], "user": {"login": comment["user"]}}
