"""Reports of each preview's lifecycle back to the forge: statuses and one comment."""

from __future__ import annotations

from bridge.report.gitea import GiteaReporter
from bridge.report.github import GITHUB_API_URL, GitHubReporter
from bridge.report.github_app import GitHubApp
from bridge.report.gitlab import GITLAB_API_URL, GitLabReporter
from bridge.report.model import NullReporter, PreviewReport, Reporter
from bridge.settings import Settings

__all__ = [
    "GitHubApp",
    "GitHubReporter",
    "GitLabReporter",
    "GiteaReporter",
    "NullReporter",
    "PreviewReport",
    "ReportSettingsError",
    "Reporter",
    "build_reporter",
]


class ReportSettingsError(ValueError):
    """The PREVIEWS_REPORT_* or PREVIEWS_GITHUB_APP_* settings are missing or contradict."""


def build_reporter(settings: Settings) -> Reporter:
    """Return the reporter that the settings configure, or a NullReporter if none.

    Raises ReportSettingsError, naming the variable to set, when the settings are
    incomplete, and ValueError when the GitHub App's private key cannot be read.
    """
    forge = settings.report_forge
    if forge is None:
        return NullReporter()
    token = settings.report_token.get_secret_value() if settings.report_token else None
    timeout = settings.report_timeout

    if forge == "github":
        base_url = settings.report_api_url or GITHUB_API_URL
        app = _github_app(settings)
        if (token is None) == (app is None):
            raise ReportSettingsError(
                "set either PREVIEWS_REPORT_TOKEN or the PREVIEWS_GITHUB_APP_* settings "
                "to report to GitHub, not both"
            )
        return GitHubReporter(token=token, app=app, base_url=base_url, timeout=timeout)

    if token is None:
        raise ReportSettingsError(f"PREVIEWS_REPORT_TOKEN is not set; {forge} needs an API token")
    if forge == "gitlab":
        base_url = settings.report_api_url or GITLAB_API_URL
        return GitLabReporter(token=token, base_url=base_url, timeout=timeout)
    if not settings.report_api_url:
        raise ReportSettingsError(
            "PREVIEWS_REPORT_API_URL is not set; Gitea needs its API root, https://HOST/api/v1"
        )
    return GiteaReporter(token=token, base_url=settings.report_api_url, timeout=timeout)


def _github_app(settings: Settings) -> GitHubApp | None:
    parts = (
        settings.github_app_id,
        settings.github_app_installation_id,
        settings.github_app_private_key_file,
    )
    if all(part is None for part in parts):
        return None
    app_id, installation_id, key_file = parts
    if app_id is None or installation_id is None or key_file is None:
        raise ReportSettingsError(
            "a GitHub App needs PREVIEWS_GITHUB_APP_ID, PREVIEWS_GITHUB_APP_INSTALLATION_ID "
            "and PREVIEWS_GITHUB_APP_PRIVATE_KEY_FILE"
        )
    try:
        private_key = key_file.read_text()
    except OSError as error:
        raise ReportSettingsError(
            f"cannot read the GitHub App private key {key_file}: {error}"
        ) from error
    return GitHubApp(app_id=app_id, private_key=private_key, installation_id=installation_id)
