"""Authentication to the GitHub API: a fixed token, or a GitHub App's installation token.

A GitHub App signs a JSON Web Token (RS256) with its private key, trades it for an
installation access token at POST /app/installations/{id}/access_tokens, and calls the
API with that token until shortly before it expires (GitHub issues them for one hour).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from bridge.report.base import USER_AGENT, error_text

GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

# GitHub rejects a JWT whose exp is more than 10 minutes ahead, and recommends an iat
# 60 seconds in the past against clock drift.
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540
# An installation token is renewed this long before its expires_at, so that no call
# starts with a token that expires on the way.
TOKEN_RENEW_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class GitHubApp:
    """A GitHub App installation to act as.

    app_id: the App's client ID or numeric app ID, which GitHub reads from the JWT's iss
    claim. private_key: the App's private key in PEM. installation_id: the installation
    on the account that owns the repositories.
    """

    app_id: str
    private_key: str = field(repr=False)
    installation_id: int


class BearerToken(httpx2.Auth):
    """Sends a fixed token as Authorization: Bearer."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the API token is empty")
        self.token = token

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class AppJwt(httpx2.Auth):
    """Sends a freshly signed GitHub App JWT, for the /app endpoints."""

    def __init__(self, app: GitHubApp) -> None:
        key = serialization.load_pem_private_key(app.private_key.encode(), password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the GitHub App private key is not an RSA key")
        self._key = key
        self._app_id = app.app_id

    def token(self) -> str:
        now = int(time.time())
        claims = {
            "iat": now - JWT_BACKDATE_SECONDS,
            "exp": now + JWT_LIFETIME_SECONDS,
            "iss": self._app_id,
        }
        return jwt.encode(claims, self._key, algorithm="RS256")

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request


class InstallationToken(httpx2.Auth):
    """Sends the App installation's access token, fetching and renewing it as needed.

    A 401 response drops the cached token (it may have been revoked) and the request is
    sent once more with a new one.
    """

    requires_response_body = True

    def __init__(self, app: GitHubApp, api_root: str) -> None:
        self._jwt = AppJwt(app)
        self._token_url = (
            f"{api_root.rstrip('/')}/app/installations/{app.installation_id}/access_tokens"
        )
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    @property
    def current(self) -> str | None:
        """The cached installation token, if any; used to keep it out of log lines."""
        return self._token

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        token = self._cached()
        if token is None:
            token = yield from self._renew()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        self._drop(token)
        token = yield from self._renew()
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _cached(self) -> str | None:
        with self._lock:
            if self._token and time.time() < self._expires_at - TOKEN_RENEW_MARGIN_SECONDS:
                return self._token
        return None

    def _drop(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _renew(self) -> Generator[httpx2.Request, httpx2.Response, str]:
        """Trade a new JWT for an installation token."""
        headers = {
            **GITHUB_HEADERS,
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {self._jwt.token()}",
        }
        response = yield httpx2.Request("POST", self._token_url, headers=headers)
        if response.status_code != 201:
            raise InstallationTokenError(response.status_code, error_text(response))
        token, expires_at = _parse_token(response)
        with self._lock:
            self._token = token
            self._expires_at = expires_at
        return token


class InstallationTokenError(Exception):
    """GitHub did not issue an installation access token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the installation token request returned {status}: {message}")
        self.status = status


def _parse_token(response: httpx2.Response) -> tuple[str, float]:
    payload = response.json()
    if not isinstance(payload, dict):
        raise ValueError("the installation token response is not a JSON object")
    token = payload.get("token")
    expires_at = payload.get("expires_at")
    if not isinstance(token, str) or not token or not isinstance(expires_at, str):
        raise ValueError("the installation token response lacks token or expires_at")
    return token, datetime.fromisoformat(expires_at).timestamp()
