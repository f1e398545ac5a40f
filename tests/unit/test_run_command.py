import re
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.models import PreviewRequest
from bridge.run_command import (
    RUN_IDENT,
    RunArgumentError,
    decode_field,
    encode_field,
    idle_preview_locks,
    parse_run_arguments,
    parse_stale_arguments,
    preview_lock,
    run_arguments,
    run_unit_argv,
    stale_run_arguments,
)
from bridge.settings import Settings

SHA = "0123456789abcdef0123456789abcdef01234567"
IDENT = "20260101T000000000000Z_demo-pr5_deploy_a1b2c3"
STALE_IDENT = "20260101T000000000000Z_demo_cleanup-stale_a1b2c3"
TEMPLATE = (
    Path(__file__).parents[2] / "roles/preview_sudoers/templates/etc/sudoers.d/pr-previews.j2"
)


def sudo_pattern() -> str:
    """Return the argument pattern of the bridge's sudo rule, for project "demo"."""
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("{{ preview_sudoers_user }}"):
            pattern = line.split("{{ preview_sudoers_command }} ", 1)[1]
            return pattern.replace("{{ preview_sudoers_project }}", "demo")
    raise AssertionError("no rule for the bridge's user in the template")


# sudo matches the arguments joined by spaces.
SUDO_PATTERN = re.compile(sudo_pattern())


@pytest.fixture
def settings(tmp_path):
    return Settings(project="demo", data_dir=tmp_path)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "main",
        "feature/ünï",
        "{{lookup('pipe','id')}}",
        "$(id);`id`",
        "a" * 255,
        "dependabot[bot]",
    ],
)
def test_field_round_trip(value):
    encoded = encode_field(value)

    assert re.fullmatch(r"[A-Za-z0-9_-]+|-", encoded)
    assert decode_field("ref", encoded) == value


@pytest.mark.parametrize("text", ["a b", "a=", "a+b", "a/b", "", "ab\n", "x" * 341])
def test_decode_rejects(text):
    with pytest.raises(RunArgumentError, match="ref"):
        decode_field("ref", text)


def test_arguments_match_sudo_pattern(settings):
    request = PreviewRequest(
        action="deploy",
        number=5,
        sha=SHA,
        ref="x" * 255,
        author="a" * 39 + "[bot]",
        repository="o" * 39 + "/" + "n" * 100,
    )

    arguments = run_arguments(request, IDENT)

    assert SUDO_PATTERN.fullmatch(" ".join(arguments))
    assert parse_run_arguments(settings, arguments[1:]) == (request, IDENT)


def test_longest_gitlab_names_match_sudo_pattern(settings):
    request = PreviewRequest(
        action="deploy",
        number=5,
        sha=SHA,
        ref="x" * 255,
        author="u" * 43 + "._",
        repository="group/sub.group/" + "p" * 124,
    )

    arguments = run_arguments(request, IDENT)

    assert len(request.author) == 45
    assert len(request.repository) == 140
    assert SUDO_PATTERN.fullmatch(" ".join(arguments))
    assert parse_run_arguments(settings, arguments[1:]) == (request, IDENT)


def test_cleanup_arguments_round_trip(settings):
    request = PreviewRequest(action="cleanup", number=5)
    ident = IDENT.replace("deploy", "cleanup")

    arguments = run_arguments(request, ident)

    assert arguments[3] == "-"
    assert SUDO_PATTERN.fullmatch(" ".join(arguments))
    assert parse_run_arguments(settings, arguments[1:]) == (request, ident)


def test_rollback_arguments_round_trip(settings):
    request = PreviewRequest(action="rollback", number=5)
    ident = IDENT.replace("deploy", "rollback")

    arguments = run_arguments(request, ident)

    assert arguments[1:4] == ["rollback", "5", "-"]
    assert parse_run_arguments(settings, arguments[1:]) == (request, ident)


@pytest.mark.parametrize(
    "arguments",
    [
        ["run", "rollback", "5", "-", IDENT.replace("deploy", "rollback"), "-", "-", "-"],
        ["run", "rollback", "5", "-", IDENT, "-", "-", "-"],
        ["run", "deploy", "5", SHA, IDENT.replace("deploy", "rollback"), "-", "-", "-"],
    ],
)
def test_sudo_pattern_rejects_rollback(arguments):
    # Only root rolls a preview back; the bridge's rule must not allow it.
    assert SUDO_PATTERN.fullmatch(" ".join(arguments)) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["deploy", "5", SHA, IDENT, "-", "-"], "expected ACTION"),
        (["deploy", "5", SHA, IDENT, "-", "-", "-", "-"], "expected ACTION"),
        (["deploy", "5", SHA, "../../etc/passwd", "-", "-", "-"], "ident"),
        (["deploy", "6", SHA, IDENT, "-", "-", "-"], "ident"),
        (["cleanup", "5", "-", IDENT, "-", "-", "-"], "ident"),
        (["deploy", "5", SHA, IDENT.replace("demo", "other"), "-", "-", "-"], "project"),
        (["deploy", "5", SHA, IDENT, "bad arg", "-", "-"], "ref"),
    ],
)
def test_parse_rejects(settings, arguments, message):
    with pytest.raises(RunArgumentError, match=message):
        parse_run_arguments(settings, arguments)


@pytest.mark.parametrize(
    "arguments",
    [
        ["deploy", "5", "-", IDENT, "-", "-", "-"],
        ["deploy", "5", SHA.upper(), IDENT, "-", "-", "-"],
        ["deploy", "5", SHA, IDENT, encode_field("bad ref"), "-", "-"],
        ["deploy", "5", SHA, IDENT, "-", encode_field("not a login"), "-"],
    ],
)
def test_parse_validates_request(settings, arguments):
    with pytest.raises(ValidationError):
        parse_run_arguments(settings, arguments)


def test_run_unit_escapes_to_transient_unit(settings):
    argv = run_unit_argv(settings, ["run", "deploy"], IDENT)

    assert argv[0] == "systemd-run"
    assert f"--unit=previews-run-{IDENT}" in argv
    assert f"--setenv=PREVIEWS_RUN_UNIT={IDENT}" in argv
    assert f"--property=ExecStopPost=-{sys.executable} -m bridge.interrupted {IDENT}" in argv
    assert argv[-3:] == [str(settings.executable), "run", "deploy"]


def test_sudo_pattern_bounds_within_sudo_limit():
    bounds = re.findall(r"\{(\d+)(?:,(\d+))?\}", sudo_pattern())
    upper = [int(high or low) for low, high in bounds]

    assert upper
    assert max(upper) <= 255


def test_stale_arguments_round_trip(settings):
    arguments = stale_run_arguments(STALE_IDENT, 7, [12, 3, 3])

    assert arguments == ["run", "cleanup-stale", STALE_IDENT, "7", "12,3,3"]
    assert parse_stale_arguments(settings, arguments[2:]) == (STALE_IDENT, 7, [3, 12])


def test_stale_run_is_not_allowed_by_sudo():
    arguments = stale_run_arguments(STALE_IDENT, 7, [3])

    assert not SUDO_PATTERN.fullmatch(" ".join(arguments))
    assert not SUDO_PATTERN.fullmatch(" ".join(arguments).replace("cleanup-stale", "cleanup"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([STALE_IDENT, "7"], "expected cleanup-stale"),
        ([STALE_IDENT, "7", "3", "4"], "expected cleanup-stale"),
        ([IDENT, "7", "3"], "ident"),
        ([STALE_IDENT.replace("demo", "other"), "7", "3"], "project"),
        ([STALE_IDENT, "0", "3"], "max age"),
        ([STALE_IDENT, "3651", "3"], "max age"),
        ([STALE_IDENT, "-1", "3"], "max age"),
        ([STALE_IDENT, "7", ""], "numbers"),
        ([STALE_IDENT, "7", "0"], "numbers"),
        ([STALE_IDENT, "7", "3,,4"], "numbers"),
        ([STALE_IDENT, "7", "3 4"], "numbers"),
        ([STALE_IDENT, "7", "10000000"], "numbers"),
    ],
)
def test_parse_stale_rejects(settings, arguments, message):
    with pytest.raises(RunArgumentError, match=message):
        parse_stale_arguments(settings, arguments)


@pytest.mark.parametrize(
    ("ident", "valid"),
    [
        (IDENT, True),
        (IDENT.replace("deploy", "cleanup"), True),
        (STALE_IDENT, True),
        (STALE_IDENT.replace("cleanup-stale", "deploy"), False),
        ("20260101T000000000000Z_demo-pr5_cleanup-stale_a1b2c3", False),
        ("../20260101T000000000000Z_demo_cleanup-stale_a1b2c3", False),
    ],
)
def test_run_ident_covers_every_run(ident, valid):
    assert bool(RUN_IDENT.fullmatch(ident)) is valid


def test_idle_preview_locks_skip_a_running_preview(settings):
    with preview_lock(settings, 4), idle_preview_locks(settings, [3, 4, 5]) as idle:
        assert idle == [3, 5]
    with idle_preview_locks(settings, [3, 4, 5]) as idle:
        assert idle == [3, 4, 5]
