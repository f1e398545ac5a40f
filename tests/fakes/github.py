"""A fake GitHub REST API: deployments, deployment statuses, issue comments and App tokens.

Checks what GitHub checks (the token, the repository and pull request, field types and
states, a deployment's ref) and a little more: the Accept and X-GitHub-Api-Version
headers must be the documented ones, unknown fields are rejected, and a deployment
must set auto_merge false and required_contexts [] (GitHub would otherwise merge the
default branch or wait for checks, and return 409 in a preview's case).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tests.fakes.server import ApiError, Call, FakeApi, check_fields, link_header, page_of

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
DEPLOYMENT_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
MAX_DESCRIPTION = 140
MAX_COMMENT = 65536
JWT_MAX_LIFETIME = 600


@dataclass
class FakeApp:
    """A GitHub App as the fake stores it: its id, public key, slug and installation."""

    app_id: str
    public_key: RSAPublicKey
    installation_id: int
    slug: str = "previews-app"
    token_lifetime: float = 3600.0
    jwts: list[dict[str, Any]] = field(default_factory=list)
    issued_tokens: list[str] = field(default_factory=list)

    @property
    def login(self) -> str:
        return f"{self.slug}[bot]"


@dataclass
class FakeGitHub(FakeApi):
    """tokens maps a personal access token to its login; repositories and pulls list what
    exists; commits lists the SHAs a deployment may name."""

    tokens: dict[str, str] = field(default_factory=dict)
    app: FakeApp | None = None
    repositories: set[str] = field(default_factory=set)
    pulls: set[tuple[str, int]] = field(default_factory=set)
    commits: set[str] = field(default_factory=set)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._next_id = 1000
        self._installation_tokens: dict[str, float] = {}
        self.route("GET", r"/user", self._get_user)
        self.route("GET", r"/app", self._get_app, authenticated=False)
        self.route(
            "POST",
            r"/app/installations/(?P<installation>\d+)/access_tokens",
            self._create_installation_token,
            authenticated=False,
        )
        self.route("POST", REPO + r"/deployments", self._create_deployment)
        self.route("GET", REPO + r"/deployments", self._list_deployments)
        self.route("POST", REPO + r"/deployments/(?P<deployment>\d+)/statuses", self._create_status)
        self.route("GET", REPO + r"/deployments/(?P<deployment>\d+)/statuses", self._list_statuses)
        self.route("GET", REPO + r"/issues/(?P<number>\d+)/comments", self._list_comments)
        self.route("POST", REPO + r"/issues/(?P<number>\d+)/comments", self._create_comment)
        self.route("PATCH", REPO + r"/issues/comments/(?P<comment>\d+)", self._edit_comment)

    # Helpers for tests.

    def add_comment(self, repository: str, number: int, body: str, user: str) -> int:
        comment_id = self._new_id()
        self.comments[comment_id] = {
            "id": comment_id,
            "repository": repository,
            "number": number,
            "body": body,
            "user": user,
        }
        return comment_id

    def comments_on(self, repository: str, number: int) -> list[dict[str, Any]]:
        return [
            c
            for c in self.comments.values()
            if (c["repository"], c["number"]) == (repository, number)
        ]

    def states(self, deployment_id: int) -> list[str]:
        return [status["state"] for status in self.statuses.get(deployment_id, [])]

    # Authentication.

    def authenticate(self, call: Call) -> str:
        self._check_media_headers(call)
        token = _bearer(call)
        if token in self.tokens:
            return self.tokens[token]
        expires_at = self._installation_tokens.get(token or "")
        if self.app is not None and expires_at is not None:
            if time.time() >= expires_at:
                raise ApiError(401, "Bad credentials")
            return self.app.login
        raise ApiError(401, "Bad credentials")

    def _check_media_headers(self, call: Call) -> None:
        if call.headers.get("accept") != ACCEPT:
            raise ApiError(415, f"fake expects Accept: {ACCEPT}")
        if call.headers.get("x-github-api-version") != API_VERSION:
            raise ApiError(400, f"fake expects X-GitHub-Api-Version: {API_VERSION}")

    def _verify_jwt(self, call: Call) -> FakeApp:
        """Verify the App's RS256 JWT with its public key and GitHub's claim rules."""
        self._check_media_headers(call)
        if self.app is None:
            raise ApiError(401, "A JSON web token could not be decoded")

        claims = _decode_jwt(_bearer(call) or "", self.app.public_key)
        _check_claims(claims, self.app.app_id)

        self.app.jwts.append(claims)
        return self.app

    # Users and Apps.

    def _get_user(self, call: Call) -> tuple[int, Any]:
        if self.app is not None and call.user == self.app.login:
            raise ApiError(403, "Resource not accessible by integration")
        return 200, {"login": call.user, "type": "User"}

    def _get_app(self, call: Call) -> tuple[int, Any]:
        app = self._verify_jwt(call)
        return 200, {"id": int(app.app_id) if app.app_id.isdigit() else 1, "slug": app.slug}

    def _create_installation_token(self, call: Call, installation: str) -> tuple[int, Any]:
        app = self._verify_jwt(call)
        if int(installation) != app.installation_id:
            raise ApiError(404, "Not Found")
        token = "ghs_" + secrets.token_hex(18)
        expires_at = time.time() + app.token_lifetime
        self._installation_tokens[token] = expires_at
        app.issued_tokens.append(token)
        iso = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 201, {"token": token, "expires_at": iso, "permissions": {"deployments": "write"}}

    # Deployments.

    def _repository(self, owner: str, name: str) -> str:
        repository = f"{owner}/{name}"
        if repository not in self.repositories:
            raise ApiError(404, "Not Found")
        return repository

    def _create_deployment(self, call: Call, owner: str, name: str) -> tuple[int, Any]:
        repository = self._repository(owner, name)
        body = check_fields(
            call.body,
            {"ref": str},
            {
                "environment": str,
                "description": (str, type(None)),
                "auto_merge": bool,
                "required_contexts": list,
                "transient_environment": bool,
                "production_environment": bool,
                "task": str,
                "payload": (dict, str),
            },
        )
        if body["ref"] not in self.commits:
            raise ApiError(422, f"No ref found for: {body['ref']}")
        if body.get("auto_merge", True):
            raise ApiError(409, "Conflict merging the default branch into the ref")
        if body.get("required_contexts") != []:
            raise ApiError(409, "Conflict: Commit status checks failed for the ref")
        deployment_id = self._new_id()
        deployment = {
            "id": deployment_id,
            "repository": repository,
            "sha": body["ref"],
            "ref": body["ref"],
            "environment": body.get("environment", "production"),
            "transient_environment": body.get("transient_environment", False),
            "production_environment": body.get("production_environment", False),
        }
        self.deployments[deployment_id] = deployment
        self.statuses[deployment_id] = []
        return 201, deployment

    def _list_deployments(
        self, call: Call, owner: str, name: str
    ) -> tuple[int, Any, dict[str, str]]:
        repository = self._repository(owner, name)
        wanted = {
            key: call.query[key][0] for key in ("sha", "environment", "ref") if key in call.query
        }
        matching = [
            d
            for d in sorted(self.deployments.values(), key=lambda d: -d["id"])
            if d["repository"] == repository and all(d[k] == v for k, v in wanted.items())
        ]
        items, page, last = page_of(matching, call.query, default=30)
        return (
            200,
            items,
            link_header(self.url + call.path[len(self.prefix) :], _plain(call, wanted), page, last),
        )

    def _deployment(self, repository: str, deployment: str) -> dict[str, Any]:
        found = self.deployments.get(int(deployment))
        if found is None or found["repository"] != repository:
            raise ApiError(404, "Not Found")
        return found

    def _create_status(self, call: Call, owner: str, name: str, deployment: str) -> tuple[int, Any]:
        found = self._deployment(self._repository(owner, name), deployment)
        body = check_fields(
            call.body,
            {"state": str},
            {
                "target_url": str,
                "log_url": str,
                "description": str,
                "environment": str,
                "environment_url": str,
                "auto_inactive": bool,
            },
        )
        if body["state"] not in DEPLOYMENT_STATES:
            raise ApiError(
                422, f"Validation Failed: state {body['state']!r} is not included in the list"
            )
        if len(body.get("description", "")) > MAX_DESCRIPTION:
            raise ApiError(
                422, "Validation Failed: description is too long (maximum is 140 characters)"
            )
        status = {"id": self._new_id(), **body}
        self.statuses[found["id"]].append(status)
        if body["state"] == "success" and body.get("auto_inactive", True):
            self._deactivate_older(found)
        return 201, status

    def _deactivate_older(self, current: dict[str, Any]) -> None:
        """Mark earlier successful deployments of the same environment inactive, as
        GitHub's auto_inactive does."""
        for other in self.deployments.values():
            same_environment = (other["repository"], other["environment"]) == (
                current["repository"],
                current["environment"],
            )
            if (
                other["id"] < current["id"]
                and same_environment
                and self.states(other["id"])[-1:] == ["success"]
            ):
                self.statuses[other["id"]].append({"id": self._new_id(), "state": "inactive"})

    def _list_statuses(self, call: Call, owner: str, name: str, deployment: str) -> tuple[int, Any]:
        found = self._deployment(self._repository(owner, name), deployment)
        newest_first = list(reversed(self.statuses[found["id"]]))
        items, _, _ = page_of(newest_first, call.query, default=30)
        return 200, items

    # Issue comments.

    def _pull(self, owner: str, name: str, number: str) -> tuple[str, int]:
        key = (self._repository(owner, name), int(number))
        if key not in self.pulls:
            raise ApiError(404, "Not Found")
        return key

    def _list_comments(
        self, call: Call, owner: str, name: str, number: str
    ) -> tuple[int, Any, dict[str, str]]:
        repository, pull = self._pull(owner, name, number)
        ordered = sorted(self.comments_on(repository, pull), key=lambda c: c["id"])
        items, page, last = page_of(ordered, call.query, default=30)
        answer = [_comment_json(c) for c in items]
        return (
            200,
            answer,
            link_header(self.url + call.path[len(self.prefix) :], _plain(call, {}), page, last),
        )

    def _create_comment(self, call: Call, owner: str, name: str, number: str) -> tuple[int, Any]:
        repository, pull = self._pull(owner, name, number)
        body = check_fields(call.body, {"body": str})
        if len(body["body"]) > MAX_COMMENT:
            raise ApiError(422, "Validation Failed: body is too long (maximum is 65536 characters)")
        comment_id = self.add_comment(repository, pull, body["body"], call.user or "")
        return 201, _comment_json(self.comments[comment_id])

    def _edit_comment(self, call: Call, owner: str, name: str, comment: str) -> tuple[int, Any]:
        repository = self._repository(owner, name)
        found = self.comments.get(int(comment))
        if found is None or found["repository"] != repository:
            raise ApiError(404, "Not Found")
        # GitHub lets collaborators with write access edit others' comments; the fake
        # lets only the author, so that editing a copied marker fails the test.
        if found["user"] != call.user:
            raise ApiError(403, "Resource not accessible by integration")
        body = check_fields(call.body, {"body": str})
        found["body"] = body["body"]
        return 200, _comment_json(found)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _bearer(call: Call) -> str | None:
    scheme, _, value = call.headers.get("authorization", "").partition(" ")
    return value if scheme in ("Bearer", "token") and value else None


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _plain(call: Call, wanted: dict[str, str]) -> dict[str, str]:
    per_page = call.query.get("per_page", ["30"])[0]
    return {**wanted, "per_page": per_page}


def _comment_json(comment: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": comment["id"],
        "body": comment["body"],
        "user": {"login": comment["user"]},
    }


def _decode_jwt(token: str, public_key: RSAPublicKey) -> dict[str, Any]:
    """Return the claims of an RS256 JWT whose signature the public key verifies."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(claims_b64))
        signature = _unb64(signature_b64)
    except ValueError as error:
        raise ApiError(401, "A JSON web token could not be decoded") from error
    if header.get("alg") != "RS256":
        raise ApiError(401, "A JSON web token could not be decoded: alg must be RS256")

    signed = f"{header_b64}.{claims_b64}".encode()
    try:
        public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as error:
        raise ApiError(401, "A JSON web token could not be decoded") from error
    return claims


def _check_claims(claims: dict[str, Any], app_id: str) -> None:
    """Apply GitHub's rules: iss is the App, iat is past, exp is at most 10 minutes ahead."""
    now = time.time()
    if str(claims.get("iss")) != app_id:
        raise ApiError(401, "'Issuer' claim ('iss') must be the App's id")
    if not isinstance(claims.get("iat"), int) or claims["iat"] > now + 5:
        raise ApiError(401, "'Issued at' claim ('iat') must be an Integer in the past")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        raise ApiError(401, "'Expiration time' claim ('exp') is in the past")
    if claims["exp"] > now + JWT_MAX_LIFETIME:
        raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
