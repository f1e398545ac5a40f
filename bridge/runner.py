"""Run a playbook through ansible-runner; its artifacts are the deployment log.

This runs as root, inside the transient unit that `previews run` starts.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from bridge.models import PreviewRequest
from bridge.run_command import share_artifacts
from bridge.settings import Settings

logger = logging.getLogger(__name__)

SECRET_VARIABLES = ("PREVIEWS_WEBHOOK_SECRET", "PREVIEWS_API_TOKEN", "PREVIEWS_REPORT_TOKEN")
PLAYBOOKS = {"deploy": "playbooks/deploy.yml", "cleanup": "playbooks/cleanup.yml"}


class UnsafeText(str):
    """A string that Ansible must never template: branch names, logins and titles."""


def _represent_unsafe(dumper: yaml.SafeDumper, value: UnsafeText) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(value))


class _ExtraVarsDumper(yaml.SafeDumper):
    pass


_ExtraVarsDumper.add_representer(UnsafeText, _represent_unsafe)


def new_ident(settings: Settings, request: PreviewRequest) -> str:
    """Name a run after its start time, its preview and its action, so idents sort by time."""
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return (
        f"{started}_{settings.preview_id(request.number)}_{request.action}_{secrets.token_hex(3)}"
    )


def extra_vars(settings: Settings, request: PreviewRequest, ident: str) -> dict[str, Any]:
    """Return the run's extra vars; every string from the forge is marked !unsafe.

    Extra vars loaded from a file are trusted by ansible-core, which would render a branch
    named "{{ lookup('pipe', ...) }}" as a template. The !unsafe tag stops that.
    """
    return {
        "previews_project": settings.project,
        "preview_pr": request.number,
        "preview_sha": request.sha or "",
        "preview_ref": UnsafeText(request.ref),
        "preview_author": UnsafeText(request.author),
        "preview_repository": UnsafeText(request.repository),
        "preview_run_ident": ident,
    }


def write_request(settings: Settings, request: PreviewRequest, ident: str) -> Path:
    """Persist the request as the run's extra-vars file, readable by root only."""
    settings.requests_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    path = settings.requests_dir / f"{ident}.yml"
    text = yaml.dump(extra_vars(settings, request, ident), Dumper=_ExtraVarsDumper)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    return path


def run_playbook(settings: Settings, request: PreviewRequest, ident: str) -> str:
    """Run the request's playbook to the end and return ansible-runner's status."""
    # ansible-runner records its whole environment in the run's artifacts.
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    extra_vars_file = write_request(settings, request, ident)
    settings.runner_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    logger.info("run %s started: %s of PR %s", ident, request.action, request.number)

    def share_when_running(status: dict[str, Any], runner_config: Any = None) -> None:
        # So that the bridge and operators can follow the log of a run in progress.
        if status.get("status") == "running":
            share_artifacts(settings, ident)

    result = ansible_runner.run(
        private_data_dir=str(settings.runner_dir),
        project_dir=str(settings.project_dir),
        playbook=PLAYBOOKS[request.action],
        inventory=str(settings.inventory),
        ident=ident,
        cmdline=f"-e @{extra_vars_file}",
        envvars={"ANSIBLE_CONFIG": str(settings.project_dir / "ansible.cfg")},
        quiet=True,
        status_handler=share_when_running,
    )

    logger.info("run %s finished: status %s, rc %s", ident, result.status, result.rc)
    return str(result.status)
