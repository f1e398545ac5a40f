import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.models import PreviewRequest
from bridge.run_command import (
    RunArgumentError,
    decode_field,
    encode_field,
    parse_run_arguments,
    run_arguments,
    run_unit_argv,
)
from bridge.settings import Settings

SHA = "0123456789abcdef0123456789abcdef01234567"
IDENT = "20260101T000000000000Z_demo-pr5_deploy_a1b2c3"
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
    assert argv[-3:] == [str(settings.executable), "run", "deploy"]


def test_sudo_pattern_bounds_within_sudo_limit():
    bounds = re.findall(r"\{(\d+)(?:,(\d+))?\}", sudo_pattern())
    upper = [int(high or low) for low, high in bounds]

    assert upper
    assert max(upper) <= 255
