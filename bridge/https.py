"""A small HTTPS client for the sandbox's previews: connect to loopback, verify by host name.

Preview host names (pr-1.previews.test) resolve nowhere, so the client connects to the
address nginx listens on and still sends the host name in SNI and the Host header, and
checks the certificate against it.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection to a fixed address that keeps the URL's host name for TLS and Host."""

    def __init__(self, host: str, port: int, address: str, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def tls_context(ca_pem: str) -> ssl.SSLContext:
    """Return a client context that trusts exactly the given certificate(s)."""
    return ssl.create_default_context(cadata=ca_pem)


def get(
    url: str,
    context: ssl.SSLContext,
    address: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """GET url over TLS from address, without following redirects."""
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname is None:
        raise ValueError(f"expected an https URL with a host name, got {url!r}")
    connection = _PinnedHTTPSConnection(
        parts.hostname, parts.port or 443, address, context=context, timeout=timeout
    )
    try:
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        connection.close()
