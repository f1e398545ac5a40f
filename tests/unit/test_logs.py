"""Publishing a run's output for the pull request's author: redacted, readable by nginx."""

import io
import json
import os

import pytest

from bridge import logs

IDENT = "20260101T000000000000Z_demo-pr3_deploy_abcdef"


@pytest.fixture
def host(tmp_path):
    artifacts = tmp_path / "artifacts"
    (artifacts / IDENT).mkdir(parents=True)
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "demo-pr3").write_text("OwnTokenOwnTokenOwnToken1234567890abcdef\n")
    (tokens / "demo-pr4").write_text("OtherTokenOtherToken1234567890abcdefghij\n")
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir(mode=0o750)
    return artifacts, logs_dir, tokens


def test_publish_redacts_every_token(host):
    artifacts, logs_dir, tokens = host
    (artifacts / IDENT / "stdout").write_text(
        "TASK [Build]\n"
        "env SECRET=OwnTokenOwnTokenOwnToken1234567890abcdef\n"
        "leaked OtherTokenOtherToken1234567890abcdefghij\n"
        "GET /?token=abc123&x=1 and X-Preview-Token: zzz\n"
        "\x1b[0;32mok: [sandbox]\x1b[0m\n"
    )

    published = logs.publish(artifacts, logs_dir, tokens, "demo-pr3", IDENT)

    text = published.read_text()
    assert published == logs_dir / "demo-pr3" / f"{IDENT}.txt"
    assert "OwnToken" not in text
    assert "OtherToken" not in text
    assert "abc123" not in text
    assert "zzz" not in text
    assert "token=[redacted]&x=1" in text
    assert "ok: [sandbox]\n" in text
    assert "\x1b" not in text
    assert "TASK [Build]" in text


def test_publish_is_readable_by_the_log_directory_group(host):
    artifacts, logs_dir, tokens = host
    (artifacts / IDENT / "stdout").write_text("PLAY RECAP\n")

    published = logs.publish(artifacts, logs_dir, tokens, "demo-pr3", IDENT)

    assert published.stat().st_mode & 0o777 == 0o640
    assert published.stat().st_gid == logs_dir.stat().st_gid
    assert not [path for path in published.parent.iterdir() if path.name.startswith(".")]


def test_publish_keeps_the_tail_of_a_huge_output(host, monkeypatch):
    artifacts, logs_dir, tokens = host
    monkeypatch.setattr(logs, "MAX_PUBLISHED_BYTES", 100)
    (artifacts / IDENT / "stdout").write_text("x" * 1000 + "THE END\n")

    published = logs.publish(artifacts, logs_dir, tokens, "demo-pr3", IDENT)

    assert published.read_text().endswith("THE END\n")
    assert len(published.read_text()) == 100


def test_publish_without_a_log_directory_does_nothing(host):
    artifacts, logs_dir, tokens = host
    os.rmdir(logs_dir)

    assert logs.publish(artifacts, logs_dir, tokens, "demo-pr3", IDENT) is None


def test_copy_output_follows_until_the_status_appears(tmp_path, monkeypatch):
    (tmp_path / "stdout").write_text("one\n")
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        with (tmp_path / "stdout").open("a") as file:
            file.write("two\n")
        (tmp_path / "status").write_text("failed")

    monkeypatch.setattr(logs.time, "sleep", sleep)
    out = io.StringIO()

    status = logs.copy_output(tmp_path, out, follow=True)

    assert status == "failed"
    assert out.getvalue() == "one\ntwo\n"
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("Authorization: Bearer bearerSECRET", "Authorization: [redacted]"),
        ("curl -H 'Authorization: token ghpSECRET'", "Authorization: [redacted]"),
        ("password=pwSECRET next", "password=[redacted] next"),
        ("PASSWORD = pwSECRET", "PASSWORD = [redacted]"),
        ("client_secret: csSECRET", "secret: [redacted]"),
        ("sent Bearer abcSECRET", "Bearer [redacted]"),
    ],
)
def test_redact_credentials(line, kept):
    redacted = logs.redact(line, [])

    assert "SECRET" not in redacted
    assert kept in redacted


def write_event(folder, counter, event, msg="") -> None:
    events = folder / "job_events"
    events.mkdir(exist_ok=True)
    data = {"event": event, "event_data": {"res": {"msg": msg}}}
    (events / f"{counter}-{counter:04x}.json").write_text(json.dumps(data))


def test_failure_message_is_the_last_failed_task(tmp_path):
    write_event(tmp_path, 3, "runner_on_failed", "demo-pr3-chat.service failed to start")
    write_event(tmp_path, 10, "runner_on_failed", "The deploy failed: the release serves again.")
    write_event(tmp_path, 11, "runner_on_ok")
    write_event(tmp_path, 12, "playbook_on_stats")

    assert logs.failure_message(tmp_path) == "The deploy failed: the release serves again."


def test_failure_message_of_successful_run(tmp_path):
    write_event(tmp_path, 1, "runner_on_ok")

    assert logs.failure_message(tmp_path) is None


def test_failure_message_without_events(tmp_path):
    assert logs.failure_message(tmp_path / "missing") is None
