"""Jinja filters that name a preview's host names and URLs, in one place."""

from __future__ import annotations

from typing import Any


def preview_hosts(services: list[dict[str, Any]], number: int, domain: str) -> dict[str, str]:
    """Return the host name of each service: pr-<N>.<domain> for the first (primary)
    service, pr-<N>-<service>.<domain> for the others, so one wildcard covers them all."""
    hosts = {}
    for index, service in enumerate(services):
        label = f"pr-{int(number)}" if index == 0 else f"pr-{int(number)}-{service['name']}"
        hosts[service["name"]] = f"{label}.{domain}"
    return hosts


def preview_urls(
    services: list[dict[str, Any]], number: int, domain: str, port: int
) -> dict[str, str]:
    """Return the HTTPS URL of each service; port 443 is left out."""
    suffix = "" if int(port) == 443 else f":{int(port)}"
    return {
        name: f"https://{host}{suffix}/"
        for name, host in preview_hosts(services, number, domain).items()
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"preview_hosts": preview_hosts, "preview_urls": preview_urls}
