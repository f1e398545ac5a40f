"""Settings of the bridge and the CLI, read from PREVIEWS_* environment variables."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Written by site.yml and readable by everyone: it contains no secret. sudo clears the
# environment, so this file is what the privileged run command reads its settings from.
SETTINGS_FILE = Path("/etc/pr-previews/previews.env")

# Values that people paste from examples; a webhook secret equal to one of them is no secret.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "placeholder", "xxx"})
MIN_SECRET_LENGTH = 16

PROJECT_SLUG = re.compile(r"^[a-z][a-z0-9]{0,19}$")


class Settings(BaseSettings):
    """Everything the bridge and the CLI need to start runs and read the registry."""

    model_config = SettingsConfigDict(
        env_prefix="PREVIEWS_", env_file=SETTINGS_FILE, extra="ignore"
    )

    project: str = Field("demo", description="project slug; preview ids are <project>-pr<N>")
    project_dir: Path = Field(PROJECT_DIR, description="checkout with playbooks/ and roles/")
    inventory: Path = Field(PROJECT_DIR / "inventory" / "sandbox", description="inventory path")
    data_dir: Path = Field(Path("/var/lib/pr-previews"), description="private state directory")
    executable: Path = Field(
        Path(sys.executable).with_name("previews"),
        description="the previews command that the sudo rule allows",
    )
    webhook_secret: SecretStr | None = Field(None, description="forge webhook secret")
    max_body_bytes: int = Field(1024 * 1024, gt=0, description="largest webhook body accepted")
    max_concurrent_runs: int = Field(2, gt=0, description="runs started at the same time")
    allowed_associations: frozenset[str] = Field(
        frozenset({"OWNER", "MEMBER", "COLLABORATOR"}),
        description="author associations whose pull requests deploy without an approval",
    )
    approval_label: str = Field(
        "preview-approved",
        min_length=1,
        max_length=50,
        description="label that approves the head SHA of a pull request when added",
    )
    approvers: frozenset[str] = Field(
        frozenset(),
        description="logins whose label approves; empty: whoever the forge lets add labels",
    )
    api_token: SecretStr | None = Field(None, description="bearer token of the operator API")
    keep_runs: int = Field(
        20, gt=0, description="runs kept per inactive preview; active previews keep all"
    )
    delivery_retention_days: int = Field(
        7, gt=0, description="days a delivery id is remembered to drop repeated deliveries"
    )
    gone_marker_days: int = Field(
        30,
        gt=0,
        description="days a removed preview's host names get a 410 response before "
        "reconcile removes their markers, after which they get a 404",
    )

    root: Path = Field(
        Path("/srv/previews"),
        description="directory of the previews' releases (the inventory's previews_root), "
        "where capacity admission counts previews and measures free disk space",
    )
    max_previews: int = Field(
        0, ge=0, description="previews on the host before a new one is over capacity; 0: no limit"
    )
    min_free_memory_mb: int = Field(
        256, ge=0, description="MiB of MemAvailable that a new preview's first deploy requires"
    )
    min_free_disk_mb: int = Field(
        1024, ge=0, description="MiB free on the previews' root that a new preview requires"
    )
    capacity_policy: Literal["wait", "evict", "reject"] = Field(
        "reject",
        description="what a new preview's deploy does over capacity: wait for room, evict the "
        "least recently used unpinned preview, or fail with the reason",
    )
    capacity_wait_seconds: int = Field(
        600, ge=0, le=86400, description="seconds the wait policy waits before it rejects"
    )

    report_forge: Literal["github", "gitea", "gitlab"] | None = Field(
        None, description="forge that deploys are reported to; unset reports nothing"
    )
    report_api_url: str | None = Field(
        None,
        description="forge API root URL; defaults to https://api.github.com for GitHub and "
        "https://gitlab.com/api/v4 for GitLab, required for Gitea (https://HOST/api/v1)",
    )
    report_token: SecretStr | None = Field(
        None, description="forge API token; on GitHub a GitHub App may be used instead"
    )
    report_timeout: float = Field(10.0, gt=0, le=120, description="seconds per forge API call")
    github_app_id: str | None = Field(None, description="GitHub App client ID or app ID")
    github_app_installation_id: int | None = Field(
        None, gt=0, description="GitHub App installation ID on the repositories' account"
    )
    github_app_private_key_file: Path | None = Field(
        None, description="PEM file with the GitHub App's private key, readable by the bridge only"
    )

    @field_validator("project")
    @classmethod
    def _check_project(cls, value: str) -> str:
        if not PROJECT_SLUG.fullmatch(value):
            raise ValueError("must be 1 to 20 lowercase letters or digits, starting with a letter")
        return value

    @field_validator("webhook_secret", "api_token")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"is a placeholder or shorter than {MIN_SECRET_LENGTH} characters; "
                "generate one with 'openssl rand -hex 32'"
            )
        return value

    @property
    def runner_dir(self) -> Path:
        """ansible-runner's private data directory; its artifacts are the registry."""
        return self.data_dir / "runner"

    @property
    def state_dir(self) -> Path:
        """The bridge's own state: accepted requests, deliveries, blocked requests."""
        return self.data_dir / "bridge"

    @property
    def logs_dir(self) -> Path:
        """Redacted run output, one directory per preview, served by nginx behind its token."""
        return self.data_dir / "logs"

    @property
    def pins_dir(self) -> Path:
        """One file per pinned preview, written by root and readable by the bridge."""
        return self.data_dir / "pins"

    @property
    def locks_dir(self) -> Path:
        """Lock files of the runs: one per preview, and one for capacity admission."""
        return self.data_dir / "locks"

    @property
    def requests_dir(self) -> Path:
        """Extra-vars files of the runs, one per run, readable by root only."""
        return self.data_dir / "requests"

    def preview_id(self, number: int) -> str:
        return f"{self.project}-pr{number}"
