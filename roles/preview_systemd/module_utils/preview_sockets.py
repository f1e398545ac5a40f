"""The kernel's TCP socket tables, read by the port reservation and the health check."""

from __future__ import annotations

import ipaddress
import struct

SOCKET_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_LISTEN = "0A"


def local_address(field):
    """Parse an address of /proc/net/tcp or tcp6: 32-bit words in hex, in host byte order."""
    words = [int(field[start : start + 8], 16) for start in range(0, len(field), 8)]
    return ipaddress.ip_address(b"".join(struct.pack("=I", word) for word in words))


def tcp_sockets():
    """Return (local address, local port, state, uid) of every IPv4 and IPv6 TCP socket."""
    sockets = []
    for table in SOCKET_TABLES:
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                rows = [line.split() for line in lines]
        except FileNotFoundError:
            # No IPv6 on this host.
            continue
        for fields in rows:
            address, port = fields[1].split(":")
            sockets.append((local_address(address), int(port, 16), fields[3], int(fields[7])))
    return sockets
