#!/usr/bin/python
"""Ansible module: wait until every service of a preview returns 2xx on its health path."""

from __future__ import annotations

DOCUMENTATION = r"""
module: preview_health
short_description: Wait for a preview's services to pass their health checks
description:
  - Polls http://127.0.0.1:<port><path> for each service until it returns 2xx.
  - Fails at once when a unit enters the failed state, which a unit that keeps exiting at
    start reaches through its start rate limit, and otherwise when I(timeout) runs out.
    The failure carries the last lines of the unit's journal.
  - Fails at once when a process of another user listens where nginx connects to a service
    (127.0.0.1 and its port), so that a service of another preview never passes for this one.
options:
  preview:
    description: Preview identity; unit names are <preview>-<service>.service.
    type: str
    required: true
  services:
    description: The preview's services, each with name and health_path.
    type: list
    elements: dict
    required: true
  ports:
    description: Port of each service, keyed by service name.
    type: dict
    required: true
  user:
    description: The user the services run as; only its sockets may listen on their ports.
    type: str
    required: true
  timeout:
    description: Seconds to wait for all services together.
    type: int
    default: 60
"""

import ipaddress
import pwd
import subprocess
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.preview_sockets import TCP_LISTEN, tcp_sockets

JOURNAL_LINES = 40
# Local addresses of a listener that takes connections to 127.0.0.1, where nginx and this
# check connect. An IPv6 socket on "::" counts, since only an IPV6_V6ONLY one would not.
LOOPBACK_LISTENERS = frozenset(
    ipaddress.ip_address(address)
    for address in ("127.0.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0")  # noqa: S104
)


def unit_state(unit):
    return subprocess.run(
        ["systemctl", "show", "--property=ActiveState", "--value", "--", unit],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def answers(port, path):
    # The opener ignores proxy settings from the environment: this is a loopback check.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def listener_uids(port):
    """Return the users whose sockets listen on 127.0.0.1 and the TCP port."""
    return {
        uid
        for address, local_port, state, uid in tcp_sockets()
        if local_port == port and state == TCP_LISTEN and address in LOOPBACK_LISTENERS
    }


def owner_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def journal(unit):
    return subprocess.run(
        [
            "journalctl",
            "--no-pager",
            "--output=short-iso",
            f"--lines={JOURNAL_LINES}",
            "--unit",
            unit,
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def main():
    module = AnsibleModule(
        argument_spec={
            "preview": {"type": "str", "required": True},
            "services": {"type": "list", "elements": "dict", "required": True},
            "ports": {"type": "dict", "required": True},
            "timeout": {"type": "int", "default": 60},
            "user": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="health checks are not run in check mode")

    params = module.params
    try:
        uid = pwd.getpwnam(params["user"]).pw_uid
    except KeyError:
        module.fail_json(msg=f"user {params['user']} does not exist")
    pending = {}
    for service in params["services"]:
        name = service["name"]
        if name not in params["ports"]:
            module.fail_json(msg=f"service {name} has no port")
        pending[f"{params['preview']}-{name}.service"] = {
            "port": int(params["ports"][name]),
            "path": service.get("health_path") or "/",
        }
    deadline = time.monotonic() + params["timeout"]
    while pending:
        for unit, service in list(pending.items()):
            state = unit_state(unit)
            if state == "failed":
                module.fail_json(
                    msg=f"{unit} failed to start; its journal:\n" + journal(unit),
                    unit=unit,
                )
            foreign = listener_uids(service["port"]) - {uid}
            if foreign:
                owners = ", ".join(sorted(owner_name(other) for other in foreign))
                module.fail_json(
                    msg=f"port {service['port']} of {unit} is in use by a process of {owners}, "
                    f"not of {params['user']}; stop that process, then deploy again",
                    unit=unit,
                )
            if state == "active" and answers(service["port"], service["path"]):
                del pending[unit]
        if not pending:
            break
        if time.monotonic() > deadline:
            unit = next(iter(pending))
            check = pending[unit]
            module.fail_json(
                msg=f"{unit} did not answer {check['path']} on port {check['port']} "
                f"within {params['timeout']} s; its journal:\n" + journal(unit),
                unit=unit,
            )
        time.sleep(0.5)
    module.exit_json(changed=False, msg="every service answers its health check")


if __name__ == "__main__":
    main()
