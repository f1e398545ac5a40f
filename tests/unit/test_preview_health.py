"""The health check's view of who listens on a port, read from the kernel's socket tables."""

import importlib.util
import os
import socket
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[2] / "roles/preview_systemd/library/preview_health.py"
spec = importlib.util.spec_from_file_location("preview_health", MODULE)
preview_health = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preview_health)


def test_listener_owner_is_found():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert preview_health.listener_uids(port) == {os.getuid()}


def test_bound_socket_is_no_listener():
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]

        assert preview_health.listener_uids(port) == set()


def test_ipv6_listener_is_found():
    with socket.socket(socket.AF_INET6) as listener:
        try:
            listener.bind(("::1", 0))
        except OSError as error:
            pytest.skip(f"no IPv6 loopback address: {error}")
        listener.listen()
        port = listener.getsockname()[1]

        assert preview_health.listener_uids(port) == {os.getuid()}
