import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bridge.models import PreviewRequest, login_error, ref_name_error, repository_error

SHA1 = "a" * 40


@pytest.mark.parametrize(
    "ref",
    [
        "main",
        "feature/login",
        "fix-1.2",
        "user/x_y",
        "ünïcode",
        "a" * 255,
        "{{x}}",
        "it's",
        "$(id)",
    ],
)
def test_ref_valid(ref):
    assert ref_name_error(ref) is None


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "a" * 256,
        "has space",
        "tab\there",
        "new\nline",
        "a..b",
        "a@{b",
        "a//b",
        "ends/",
        "ends.",
        "@",
        ".hidden",
        "dir/.hidden",
        "x.lock",
        "dir/x.lock/y",
        "tilde~1",
        "caret^",
        "colon:",
        "question?",
        "star*",
        "bracket[",
        "back\\slash",
        "del\x7f",
        "-rf",
        "--upload-pack=x",
        "/leading",
    ],
)
def test_ref_invalid(ref):
    assert ref_name_error(ref) is not None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab/.-@{}lock ~^:", min_size=1, max_size=12))
def test_ref_accepted_only_if_git_accepts(ref):
    if ref_name_error(ref) is None:
        git = subprocess.run(
            ["git", "check-ref-format", "--branch", ref], capture_output=True, check=False
        )
        assert git.returncode == 0, ref


@pytest.mark.parametrize("sha", [SHA1, "0123456789abcdef" * 4])
def test_sha_valid(sha):
    assert PreviewRequest(action="deploy", number=1, sha=sha).sha == sha


@pytest.mark.parametrize("sha", ["A" * 40, "a" * 39, "a" * 41, "g" * 40, "", "a" * 40 + "\n"])
def test_sha_invalid(sha):
    with pytest.raises(ValidationError, match="sha"):
        PreviewRequest(action="deploy", number=1, sha=sha)


@pytest.mark.parametrize("number", [0, -1, 10_000_000])
def test_number_out_of_range(number):
    with pytest.raises(ValidationError, match="number"):
        PreviewRequest(action="cleanup", number=number)


@pytest.mark.parametrize(
    "login",
    [
        "octocat",
        "a",
        "dependabot[bot]",
        "a-b-c",
        "x" * 39,
        "x" * 39 + "[bot]",
        # Gitea, Forgejo and GitLab usernames.
        "quan.hoang",
        "a_nice_user",
        "6543",
        "_underscore",
        "trail-",
        "dou--ble",
        "x" * 45,
    ],
)
def test_login_valid(login):
    assert login_error(login) is None
    assert PreviewRequest(action="cleanup", number=1, author=login).author == login


@pytest.mark.parametrize(
    "login",
    ["-lead", ".lead", "x" * 46, "sp ace", "a;b", "é", "a/b", "a\nb", "a\tb", "x[bot]y", "[bot]"],
)
def test_login_invalid(login):
    assert login_error(login) is not None
    with pytest.raises(ValidationError, match="author"):
        PreviewRequest(action="cleanup", number=1, author=login)


def test_deploy_needs_sha():
    with pytest.raises(ValidationError, match="head SHA"):
        PreviewRequest(action="deploy", number=1)


def test_rollback_takes_no_sha():
    with pytest.raises(ValidationError, match="takes no SHA"):
        PreviewRequest(action="rollback", number=1, sha="0" * 40)


def test_rollback_without_sha():
    assert PreviewRequest(action="rollback", number=1).sha is None


@pytest.mark.parametrize(
    "repository",
    [
        "Codertocat/Hello-World",
        "owner/.github",
        "test_it/test_ci_thing",
        "quan.hoang/atlantis-example",
        "group/subgroup/project",
        "a/b/c/d/e/f",
        "_group/project",
        "o" * 39 + "/" + "n" * 100,
        "g/" + "p" * 138,
    ],
)
def test_repository_valid(repository):
    assert repository_error(repository) is None
    assert (
        PreviewRequest(action="cleanup", number=1, repository=repository).repository == repository
    )


@pytest.mark.parametrize(
    "repository",
    [
        "no-slash",
        "/leading",
        "trailing/",
        "a//b",
        "-a/b",
        "a/-b/c",
        "owner/..",
        "owner/.",
        "../etc/passwd",
        "a/b c",
        "a/b\n",
        "a/é",
        "a/b;c",
        "g/" + "p" * 139,
    ],
)
def test_repository_invalid(repository):
    assert repository_error(repository) is not None
    with pytest.raises(ValidationError, match="repository"):
        PreviewRequest(action="cleanup", number=1, repository=repository)
