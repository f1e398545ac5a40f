"""Settings read from PREVIEWS_* variables, as systemd passes them to the bridge."""

import pytest
from pydantic import ValidationError

from bridge.settings import Settings


def test_trust_lists_are_read_as_json(monkeypatch):
    monkeypatch.setenv("PREVIEWS_ALLOWED_ASSOCIATIONS", '["OWNER"]')
    monkeypatch.setenv("PREVIEWS_APPROVERS", '["lead", "second"]')

    settings = Settings()

    assert settings.allowed_associations == frozenset({"OWNER"})
    assert settings.approvers == frozenset({"lead", "second"})


def test_trust_defaults():
    settings = Settings()

    assert settings.allowed_associations == frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
    assert settings.approvers == frozenset()
    assert settings.approval_label == "preview-approved"
    assert settings.max_concurrent_runs == 2
    assert settings.max_body_bytes == 1024 * 1024


@pytest.mark.parametrize("token", ["changeme", "short"])
def test_placeholder_api_token_is_rejected(token):
    with pytest.raises(ValidationError, match="api_token"):
        Settings(api_token=token)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PREVIEWS_MAX_CONCURRENT_RUNS", "0"),
        ("PREVIEWS_KEEP_RUNS", "-1"),
        ("PREVIEWS_APPROVAL_LABEL", ""),
    ],
)
def test_invalid_numbers_and_labels_are_rejected(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        Settings()
