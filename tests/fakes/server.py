"""A fake API server: a real HTTP server on 127.0.0.1 with an ephemeral port, in a thread.

It records every call (method, raw path, query, headers, JSON body) and responds from
route handlers. Setting fail_status makes it fail every call with that status code, and
setting hang_seconds makes it wait before responding, to test a client's error handling
and timeouts.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Handler = Callable[..., Answer]


@dataclass
class Call:
    """One request as the fake received it. path keeps its percent-encoding."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None
    raw_body: bytes = b""
    user: str | None = None

    @property
    def target(self) -> str:
        return f"{self.method} {self.path}"


class ApiError(Exception):
    """Raised by a handler to respond with an error status and a JSON message."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload = {"message": message, **extra}


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    authenticated: bool = True


@dataclass
class FakeApi:
    """Base of the forge fakes; subclasses add routes and authentication."""

    prefix: str = ""
    calls: list[Call] = field(default_factory=list)
    fail_status: int | None = None
    hang_seconds: float = 0.0

    def __post_init__(self) -> None:
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # Lifecycle.

    def __enter__(self) -> FakeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def root(self) -> str:
        """Scheme, host and port, without the API prefix."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The API root that a client takes as its base URL."""
        return self.root + self.prefix

    # Routes.

    def route(
        self, method: str, pattern: str, handler: Handler, authenticated: bool = True
    ) -> None:
        """Add a route; pattern is a regex over the raw path after the prefix."""
        self._routes.append(_Route(method, re.compile(pattern), handler, authenticated))

    def authenticate(self, call: Call) -> str:
        """Return the caller's login, or raise ApiError(401)."""
        raise NotImplementedError

    # What the tests read.

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and re.fullmatch(pattern, c.path)]

    def targets(self) -> list[str]:
        with self._lock:
            return [call.target for call in self.calls]

    # Request handling, called from the server's threads.

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        call = Call(method, parts.path, parse_qs(parts.query), headers, raw_body=raw_body)
        with self._lock:
            self.calls.append(call)

        if self.hang_seconds:
            self._stopped.wait(self.hang_seconds)
        if self.fail_status is not None:
            return self.fail_status, {"message": "Server Error"}, {}
        try:
            # One handler at a time, so that the fakes' state needs no locks of its own.
            with self._state_lock:
                return self._dispatch(call)
        except ApiError as error:
            return error.status, error.payload, {}

    def _dispatch(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        if not call.path.startswith(self.prefix + "/"):
            raise ApiError(404, "Not Found")
        path = call.path[len(self.prefix) :]
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match is None or route.method != call.method:
                continue
            if route.authenticated:
                call.user = self.authenticate(call)
            if call.raw_body:
                call.body = _parse_json(call.raw_body, call.headers)
            answer = route.handler(call, **match.groupdict())
            status, payload = answer[0], answer[1]
            extra_headers = answer[2] if len(answer) == 3 else {}
            return status, payload, extra_headers
        raise ApiError(404, "Not Found")


def _parse_json(raw_body: bytes, headers: dict[str, str]) -> Any:
    if not headers.get("content-type", "").startswith("application/json"):
        raise ApiError(415, "expected a JSON body with Content-Type: application/json")
    try:
        return json.loads(raw_body)
    except ValueError as error:
        raise ApiError(400, f"Problems parsing JSON: {error}") from error


def _make_handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes. Without TCP_NODELAY, Nagle's algorithm
            # and the client's delayed ACK hold the body back for about 40 ms per call.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, payload, extra_headers = api.handle(self.command, self.path, headers, raw_body)
            body = b"" if payload is None else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                # The client gave up waiting (a timeout test), so nobody reads the response.
                pass

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return RequestHandler


# Body checks shared by the fakes.


def check_fields(
    body: Any,
    required: dict[str, type | tuple[type, ...]],
    optional: dict[str, type | tuple[type, ...]] | None = None,
    status: int = 422,
) -> dict[str, Any]:
    """Check that body is a JSON object with the required fields, each of its type, and no
    field outside required and optional. Raise ApiError(status) naming the first problem.

    The real APIs ignore unknown fields; the fakes reject them so that a misspelt field
    fails a test instead of being dropped.
    """
    optional = optional or {}
    if not isinstance(body, dict):
        raise ApiError(status, "Invalid request: the body is not a JSON object")
    for name, kind in required.items():
        if name not in body:
            raise ApiError(status, f"Invalid request: missing field {name!r}")
        _check_type(name, body[name], kind, status)
    for name, value in body.items():
        if name in required:
            continue
        if name not in optional:
            raise ApiError(status, f"Invalid request: unknown field {name!r}")
        _check_type(name, value, optional[name], status)
    return body


def _check_type(name: str, value: Any, kind: type | tuple[type, ...], status: int) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python, but not in JSON.
    if isinstance(value, bool) and bool not in kinds:
        raise ApiError(status, f"Invalid request: {name!r} is a boolean")
    if not isinstance(value, kinds):
        raise ApiError(
            status, f"Invalid request: {name!r} has the wrong type {type(value).__name__}"
        )


def link_header(url: str, params: dict[str, str], page: int, last: int) -> dict[str, str]:
    """Return GitHub's Link header for a page of a listing."""
    links = []
    for rel, number in (("next", page + 1), ("last", last)):
        if rel == "next" and page >= last:
            continue
        query = "&".join(f"{k}={v}" for k, v in {**params, "page": str(number)}.items())
        links.append(f'<{url}?{query}>; rel="{rel}"')
    return {"Link": ", ".join(links)} if links else {}


def page_of(
    items: list[Any], query: dict[str, list[str]], default: int, maximum: int = 100
) -> tuple[list[Any], int, int]:
    """Return (items of the requested page, page, last page) for per_page and page params."""
    per_page = min(int(query.get("per_page", [str(default)])[0]), maximum)
    page = max(int(query.get("page", ["1"])[0]), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    start = (page - 1) * per_page
    return items[start : start + per_page], page, last
