"""A validated request to deploy or clean up one preview."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_PR_NUMBER = 9_999_999
MAX_REF_LENGTH = 255
# Maximum author and repository lengths, in ASCII characters. `previews run` and its sudo
# rule accept 60 and 188 base64url characters, which encode 45 and 141 bytes.
# NOTE: Gitea and GitLab allow longer names, and a deploy with one fails validation.
MAX_LOGIN_LENGTH = 45
MAX_REPOSITORY_LENGTH = 140

SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# GitHub logins: letters, digits and single hyphens, up to 39 characters; apps add "[bot]".
LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}(?:\[bot\])?$")
# Gitea, Forgejo and GitLab usernames also contain "_" and "." (quan.hoang, a_nice_user).
# Gitea requires a letter or digit first, GitLab also allows "_". A leading "-" or "." and
# anything outside ASCII are rejected. The bound is MAX_LOGIN_LENGTH.
USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,44}$")
REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# One segment of a Gitea, Forgejo or GitLab repository path: an owner, a group, a subgroup
# or a project. Both forges allow a leading "." (Forgejo's .profile repository). A leading
# "-" is rejected, although Gitea allows it in repository names.
PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
# Characters that git check-ref-format rejects anywhere in a ref name.
REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")

# Actions that a forge event requests.
Action = Literal["deploy", "cleanup"]
# Actions of a run: a forge's action, or a rollback, which only root starts.
RunAction = Literal[Action, "rollback"]


def ref_name_error(ref: str) -> str | None:
    """Return why ref breaks git's ref-name rules (git check-ref-format), or None if it is valid."""
    if not ref or len(ref.encode()) > MAX_REF_LENGTH:
        return f"must be 1 to {MAX_REF_LENGTH} bytes in UTF-8"
    if REF_FORBIDDEN.search(ref):
        return "contains a control character, a space or one of ~ ^ : ? * [ \\"
    if ".." in ref or "@{" in ref or "//" in ref:
        return "contains '..', '@{' or '//'"
    if ref == "@" or ref.endswith(("/", ".")):
        return "is '@' or ends with '/' or '.'"
    if ref.startswith("-"):
        # git check-ref-format --branch rejects it, and a tool could read it as an option.
        return "starts with '-'"
    if ref.startswith("/"):
        return "starts with '/'"
    for component in ref.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            return "has a component that starts with '.' or ends with '.lock'"
    return None


def login_error(login: str) -> str | None:
    """Return why login is neither a GitHub login nor a Gitea, Forgejo or GitLab username.

    Returns None if it is valid.
    """
    if LOGIN.fullmatch(login) or USERNAME.fullmatch(login):
        return None
    return (
        f"must be 1 to {MAX_LOGIN_LENGTH} ASCII letters, digits, '_', '-' or '.', "
        "starting with a letter, digit or '_'"
    )


def repository_error(path: str) -> str | None:
    """Return why path is not a valid repository path, or None if it is valid.

    A path is <owner>/<name>, or <group>/<subgroup>/.../<project> on GitLab.
    """
    if not path.isascii() or not 0 < len(path) <= MAX_REPOSITORY_LENGTH:
        return f"must be 1 to {MAX_REPOSITORY_LENGTH} ASCII characters"
    segments = path.split("/")
    if len(segments) < 2:
        return "must be <owner>/<name> or <group>/.../<project>"
    if "." in segments or ".." in segments:
        return "has a '.' or '..' segment"
    if REPOSITORY.fullmatch(path) or all(PATH_SEGMENT.fullmatch(item) for item in segments):
        return None
    return (
        "has an empty segment, a segment that starts with '-', or a character other "
        "than letters, digits, '_', '-' and '.'"
    )


class PreviewRequest(BaseModel):
    """The pull request's data that a run needs; every field is validated on the way in."""

    model_config = ConfigDict(frozen=True)

    action: RunAction
    number: int = Field(ge=1, le=MAX_PR_NUMBER)
    sha: str | None = None
    ref: str = ""
    author: str = ""
    repository: str = ""
    delivery: str = Field("", max_length=100, pattern=r"^[A-Za-z0-9-]*$")

    @field_validator("sha")
    @classmethod
    def _check_sha(cls, value: str | None) -> str | None:
        if value is not None and not SHA.fullmatch(value):
            raise ValueError("must be 40 or 64 lowercase hexadecimal characters")
        return value

    @field_validator("ref")
    @classmethod
    def _check_ref(cls, value: str) -> str:
        error = ref_name_error(value) if value else None
        if error:
            raise ValueError(error)
        return value

    @field_validator("author")
    @classmethod
    def _check_author(cls, value: str) -> str:
        error = login_error(value) if value else None
        if error:
            raise ValueError(error)
        return value

    @field_validator("repository")
    @classmethod
    def _check_repository(cls, value: str) -> str:
        error = repository_error(value) if value else None
        if error:
            raise ValueError(error)
        return value

    @model_validator(mode="after")
    def _check_deploy_has_sha(self) -> Self:
        if self.action == "deploy" and self.sha is None:
            raise ValueError("a deploy request needs the head SHA")
        if self.action == "rollback" and self.sha is not None:
            raise ValueError(
                "a rollback request takes no SHA: the host picks the previous good release"
            )
        return self
