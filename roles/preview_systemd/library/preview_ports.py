#!/usr/bin/python
"""Ansible module: reserve or release a preview's ports in the host's port pool."""

from __future__ import annotations

DOCUMENTATION = r"""
module: preview_ports
short_description: Reserve one port per service of a preview from a pool
description:
  - Keeps one reservation file per preview in I(directory), written under a lock, so that
    concurrent runs never hand out the same port.
  - A port is free when no preview has reserved it and no socket uses it as its local port.
  - A service that already has a reservation keeps its port.
options:
  preview:
    description: Preview identity, <project>-pr<N>.
    type: str
    required: true
  services:
    description: Service names that need a port; ignored when I(state=absent).
    type: list
    elements: str
    default: []
  directory:
    description: Directory of the reservation files.
    type: path
    required: true
  range_start:
    description: First port of the pool.
    type: int
    default: 40000
  range_end:
    description: Last port of the pool.
    type: int
    default: 49999
  state:
    description: Reserve (present) or release (absent) the preview's ports.
    type: str
    choices: [present, absent]
    default: present
"""

RETURN = r"""
ports:
  description: Port of each service.
  returned: when state is present
  type: dict
"""

import fcntl
import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.preview_sockets import tcp_sockets

PREVIEW = re.compile(r"^[a-z][a-z0-9]{0,19}-pr[0-9]{1,7}$")
SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def ports_in_use():
    """Return the local TCP ports of every socket, listening or not, on any address.

    The pool may overlap the ephemeral ports, and a connection that uses one as its local
    port, even in TIME_WAIT, makes a service's listen on that port fail with EADDRINUSE.
    """
    return {port for _, port, _, _ in tcp_sockets()}


def read_reservations(directory):
    reservations = {}
    for name in os.listdir(directory):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(directory, name)) as handle:
            reservations[name[: -len(".json")]] = json.load(handle)
    return reservations


def write_atomically(path, data):
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def allocate(preview, services, reservations, busy, start, end):
    """Return the preview's ports: kept where reserved, the lowest free ones otherwise."""
    own = dict(reservations.get(preview, {}))
    reserved_by_others = {
        port for name, ports in reservations.items() if name != preview for port in ports.values()
    }
    ports = {service: own[service] for service in services if service in own}
    unavailable = reserved_by_others | set(ports.values()) | (busy - set(own.values()))
    candidates = (port for port in range(start, end + 1) if port not in unavailable)
    for service in services:
        if service in ports:
            continue
        port = next(candidates, None)
        if port is None:
            raise ValueError(f"the port pool {start}-{end} is exhausted")
        ports[service] = port
    return ports


def main():
    module = AnsibleModule(
        argument_spec={
            "preview": {"type": "str", "required": True},
            "services": {"type": "list", "elements": "str", "default": []},
            "directory": {"type": "path", "required": True},
            "range_start": {"type": "int", "default": 40000},
            "range_end": {"type": "int", "default": 49999},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    params = module.params
    preview = params["preview"]
    if not PREVIEW.match(preview):
        module.fail_json(msg=f"invalid preview id {preview!r}: expected <project>-pr<N>")
    for service in params["services"]:
        if not SERVICE.match(service):
            module.fail_json(msg=f"invalid service name {service!r}")
    if not 1024 <= params["range_start"] <= params["range_end"] <= 65535:
        module.fail_json(msg="the port pool must satisfy 1024 <= range_start <= range_end <= 65535")

    directory = params["directory"]
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = os.path.join(directory, f"{preview}.json")
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reservations = read_reservations(directory)
        before = reservations.get(preview, {})

        if params["state"] == "absent":
            changed = os.path.exists(path)
            if changed and not module.check_mode:
                os.remove(path)
            module.exit_json(changed=changed, ports={}, diff={"before": before, "after": {}})

        try:
            ports = allocate(
                preview,
                params["services"],
                reservations,
                ports_in_use(),
                params["range_start"],
                params["range_end"],
            )
        except ValueError as error:
            module.fail_json(msg=str(error))
        changed = ports != before
        if changed and not module.check_mode:
            write_atomically(path, ports)
    module.exit_json(changed=changed, ports=ports, diff={"before": before, "after": ports})


if __name__ == "__main__":
    main()
