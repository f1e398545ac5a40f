"""The health check's view of who listens on a port, read from the kernel's socket tables."""

import os
import socket

import pytest

from tests.unit.role_modules import load, load_util

preview_health = load("preview_systemd", "preview_health")
preview_sockets = load_util("preview_systemd", "preview_sockets")


def listening(family: int, address: str) -> socket.socket:
    """Return a socket that listens on address and a free port, or skip without the family."""
    listener = socket.socket(family)
    try:
        listener.bind((address, 0))
    except OSError as error:
        listener.close()
        pytest.skip(f"cannot bind {address}: {error}")
    listener.listen()
    return listener


@pytest.mark.parametrize(
    ("family", "address"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::ffff:127.0.0.1")]
)
def test_listener_reached_at_loopback_counts(family, address):
    with listening(family, address) as listener:
        port = listener.getsockname()[1]

        assert preview_health.listener_uids(port) == {os.getuid()}


@pytest.mark.parametrize(
    ("family", "address"), [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET6, "::1")]
)
def test_listener_on_another_address_is_ignored(family, address):
    with listening(family, address) as listener:
        port = listener.getsockname()[1]

        assert preview_health.listener_uids(port) == set()


def test_bound_socket_is_no_listener():
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]

        assert preview_health.listener_uids(port) == set()


# The tests listen on loopback only, so the wildcard addresses are checked as the kernel
# prints them, which is the same in either byte order.
@pytest.mark.parametrize(("field", "address"), [("0" * 8, "0.0.0.0"), ("0" * 32, "::")])  # noqa: S104
def test_wildcard_listener_counts(field, address):
    parsed = preview_sockets.local_address(field)

    assert str(parsed) == address
    assert parsed in preview_health.LOOPBACK_LISTENERS
