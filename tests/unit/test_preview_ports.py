import pytest

from tests.unit.role_modules import load

preview_ports = load("preview_systemd", "preview_ports")
allocate = preview_ports.allocate


def test_allocate_lowest_free():
    ports = allocate("demo-pr1", ["web", "api"], {}, set(), 40000, 40010)

    assert ports == {"web": 40000, "api": 40001}


def test_allocate_skips_other_previews():
    reservations = {"demo-pr2": {"web": 40000, "api": 40001}}

    ports = allocate("demo-pr1", ["web"], reservations, set(), 40000, 40010)

    assert ports == {"web": 40002}


def test_allocate_skips_listening_ports():
    ports = allocate("demo-pr1", ["web", "api"], {}, {40000, 40002}, 40000, 40010)

    assert ports == {"web": 40001, "api": 40003}


def test_allocate_keeps_own_reservation_even_while_listening():
    reservations = {"demo-pr1": {"web": 40005}}

    ports = allocate("demo-pr1", ["web", "api"], reservations, {40005}, 40000, 40010)

    assert ports == {"web": 40005, "api": 40000}


def test_allocate_drops_removed_service():
    reservations = {"demo-pr1": {"web": 40000, "old": 40001}}

    ports = allocate("demo-pr1", ["web"], reservations, set(), 40000, 40010)

    assert ports == {"web": 40000}


def test_allocate_pool_exhausted():
    reservations = {"demo-pr2": {"web": 40000}}

    with pytest.raises(ValueError, match="40000-40001 is exhausted"):
        allocate("demo-pr1", ["web", "api"], reservations, {40001}, 40000, 40001)


def test_ports_in_use_include_listeners():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        assert port in preview_ports.ports_in_use()


def test_ports_in_use_include_a_connection_local_port():
    import socket

    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())
        port = client.getsockname()[1]

        assert port in preview_ports.ports_in_use()
