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
from bridge.run_command import STALE_ACTION, share_artifacts
from bridge.settings import Settings

logger = logging.getLogger(__name__)

SECRET_VARIABLES = ("PREVIEWS_WEBHOOK_SECRET", "PREVIEWS_API_TOKEN", "PREVIEWS_REPORT_TOKEN")
PLAYBOOKS = {
    "deploy": "playbooks/deploy.yml",
    "cleanup": "playbooks/cleanup.yml",
    STALE_ACTION: "playbooks/cleanup-stale.yml",
    "rollback": "playbooks/rollback.yml",
}


class UnsafeText(str):
    """A string that Ansible must never template: branch names, logins and titles."""


def unsafe(value: str) -> str:
    """Return the forge string marked so that Ansible never templates it.

    An empty string stays plain, because Ansible loads an empty `!unsafe` scalar as None,
    which the registry would record as "None".
    """
    return UnsafeText(value) if value else value


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


def new_stale_ident(settings: Settings) -> str:
    """Name a stale cleanup run after its start time and the project it covers."""
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{started}_{settings.project}_{STALE_ACTION}_{secrets.token_hex(3)}"


def extra_vars(settings: Settings, request: PreviewRequest, ident: str) -> dict[str, Any]:
    """Return the run's extra vars; every string from the forge is marked !unsafe.

    Extra vars loaded from a file are trusted by ansible-core, which would render a branch
    named "{{ lookup('pipe', ...) }}" as a template. The !unsafe tag stops that.
    """
    return {
        "previews_project": settings.project,
        "preview_pr": request.number,
        "preview_sha": request.sha or "",
        "preview_ref": unsafe(request.ref),
        "preview_author": unsafe(request.author),
        "preview_repository": unsafe(request.repository),
        "preview_run_ident": ident,
    }


def write_request(
    settings: Settings,
    request: PreviewRequest,
    ident: str,
    admission_error: str = "",
    repair: bool = False,
) -> Path:
    """Persist the request as the run's extra-vars file, readable by root only.

    A deploy that capacity admission rejected carries the reason, and its playbook fails
    with it. A run after an interrupted one has `preview_repair` set, so it reloads nginx
    and restarts the services even where it finds nothing to change.
    """
    variables = extra_vars(settings, request, ident)
    if admission_error:
        variables["preview_admission_error"] = unsafe(admission_error)
    if repair:
        variables["preview_repair"] = True
    return _write_extra_vars(settings, variables, ident)


def _write_extra_vars(settings: Settings, variables: dict[str, Any], ident: str) -> Path:
    settings.requests_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    path = settings.requests_dir / f"{ident}.yml"
    text = yaml.dump(variables, Dumper=_ExtraVarsDumper)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    return path


def run_playbook(
    settings: Settings,
    request: PreviewRequest,
    ident: str,
    admission_error: str = "",
    repair: bool = False,
) -> str:
    """Run the request's playbook to the end and return ansible-runner's status."""
    extra_vars_file = write_request(settings, request, ident, admission_error, repair)
    logger.info("run %s started: %s of PR %s", ident, request.action, request.number)
    return _run(settings, PLAYBOOKS[request.action], extra_vars_file, ident)


def run_stale_playbook(settings: Settings, numbers: list[int], ident: str) -> str:
    """Remove the previews of the given PRs in one run; return ansible-runner's status."""
    variables = {
        "previews_project": settings.project,
        "previews_stale_prs": numbers,
        "preview_run_ident": ident,
    }
    extra_vars_file = _write_extra_vars(settings, variables, ident)
    logger.info("run %s started: cleanup of the stale previews of PRs %s", ident, numbers)
    return _run(settings, PLAYBOOKS[STALE_ACTION], extra_vars_file, ident)


def runner_environment(settings: Settings) -> dict[str, str]:
    """Return the environment variables that ansible-runner adds for a run."""
    return {
        "ANSIBLE_CONFIG": str(settings.project_dir / "ansible.cfg"),
        # ansible-runner puts its own directory in place of ansible.cfg's callback_plugins
        # and appends it to this one. The callback for runs by hand must still load, or
        # ansible.cfg's callbacks_enabled warns; it records nothing under ansible-runner.
        # An empty ANSIBLE_CALLBACKS_ENABLED instead fails every run in ansible-core 2.19
        # ("A non-empty plugin name is required").
        "ANSIBLE_CALLBACK_PLUGINS": str(settings.project_dir / "plugins" / "callback"),
    }


def _run(settings: Settings, playbook: str, extra_vars_file: Path, ident: str) -> str:
    # ansible-runner records its whole environment in the run's artifacts.
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    settings.runner_dir.mkdir(parents=True, mode=0o700, exist_ok=True)

    def share_when_running(status: dict[str, Any], runner_config: Any = None) -> None:
        # So that the bridge and operators can follow the log of a run in progress.
        if status.get("status") == "running":
            share_artifacts(settings, ident)

    result = ansible_runner.run(
        private_data_dir=str(settings.runner_dir),
        project_dir=str(settings.project_dir),
        playbook=playbook,
        inventory=str(settings.inventory),
        ident=ident,
        cmdline=f"-e @{extra_vars_file}",
        envvars=runner_environment(settings),
        quiet=True,
        status_handler=share_when_running,
    )

    logger.info("run %s finished: status %s, rc %s", ident, result.status, result.rc)
    return str(result.status)
