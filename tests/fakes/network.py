"""A pytest fixture that keeps the reporter tests on loopback.

The reporters catch every error, so a guard that only raised would be swallowed: it
also records each attempt to reach another host, and the fixture fails the test at
teardown if there was one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse, record and fail on any connection that is not to a loopback address."""
    attempts: list[str] = []
    original = socket.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host = str(address[0])
        if not _is_loopback(host):
            attempts.append(f"{host}:{address[1]}")
            raise OSError(f"test guard: connection to {host} refused, only loopback is allowed")
        return original(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    yield attempts
    assert attempts == [], f"a test tried to reach non-loopback hosts: {attempts}"
