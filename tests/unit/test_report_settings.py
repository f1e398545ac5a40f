"""build_reporter: which reporter the PREVIEWS_* settings configure."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.report import (
    GiteaReporter,
    GitHubReporter,
    GitLabReporter,
    NullReporter,
    ReportSettingsError,
    build_reporter,
)
from bridge.settings import Settings
from tests.fakes.network import loopback_only  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.usefixtures("loopback_only")

TOKEN = "forgeApiToken0123456789"


def make_settings(tmp_path, **values):
    return Settings(_env_file=None, data_dir=tmp_path, **values)


def test_build_without_forge(tmp_path):
    assert isinstance(build_reporter(make_settings(tmp_path)), NullReporter)


def test_build_github_token(tmp_path):
    reporter = build_reporter(make_settings(tmp_path, report_forge="github", report_token=TOKEN))

    assert isinstance(reporter, GitHubReporter)
    assert reporter.base_url == "https://api.github.com"
    reporter.close()


def test_build_github_app(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "app.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    reporter = build_reporter(
        make_settings(
            tmp_path,
            report_forge="github",
            report_api_url="https://github.example.test/api/v3",
            github_app_id="Iv1.abc",
            github_app_installation_id=7,
            github_app_private_key_file=key_file,
        )
    )

    assert isinstance(reporter, GitHubReporter)
    assert reporter.base_url == "https://github.example.test/api/v3"
    reporter.close()


def test_build_github_token_and_app(tmp_path):
    values = {
        "report_forge": "github",
        "report_token": TOKEN,
        "github_app_id": "1",
        "github_app_installation_id": 7,
        "github_app_private_key_file": tmp_path / "missing.pem",
    }
    with pytest.raises(ReportSettingsError, match="cannot read the GitHub App private key"):
        build_reporter(make_settings(tmp_path, **values))


def test_build_github_incomplete_app(tmp_path):
    with pytest.raises(ReportSettingsError, match="PREVIEWS_GITHUB_APP_INSTALLATION_ID"):
        build_reporter(make_settings(tmp_path, report_forge="github", github_app_id="1"))


def test_build_github_no_credentials(tmp_path):
    with pytest.raises(ReportSettingsError, match="PREVIEWS_REPORT_TOKEN"):
        build_reporter(make_settings(tmp_path, report_forge="github"))


def test_build_gitea_needs_url(tmp_path):
    with pytest.raises(ReportSettingsError, match="PREVIEWS_REPORT_API_URL"):
        build_reporter(make_settings(tmp_path, report_forge="gitea", report_token=TOKEN))


def test_build_gitea(tmp_path):
    reporter = build_reporter(
        make_settings(
            tmp_path,
            report_forge="gitea",
            report_token=TOKEN,
            report_api_url="https://gitea.example.test/api/v1/",
        )
    )

    assert isinstance(reporter, GiteaReporter)
    assert reporter.base_url == "https://gitea.example.test/api/v1"
    reporter.close()


def test_build_gitlab(tmp_path):
    reporter = build_reporter(make_settings(tmp_path, report_forge="gitlab", report_token=TOKEN))

    assert isinstance(reporter, GitLabReporter)
    assert reporter.base_url == "https://gitlab.com/api/v4"
    reporter.close()


def test_build_gitlab_needs_token(tmp_path):
    with pytest.raises(ReportSettingsError, match="PREVIEWS_REPORT_TOKEN"):
        build_reporter(make_settings(tmp_path, report_forge="gitlab"))


def test_settings_token_hidden(tmp_path):
    assert TOKEN not in repr(make_settings(tmp_path, report_forge="gitlab", report_token=TOKEN))
