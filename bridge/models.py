"""A validated request to deploy or clean up one preview."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_PR_NUMBER = 9_999_999
MAX_REF_LENGTH = 255

SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# GitHub logins: letters, digits and single hyphens, up to 39 characters; apps add "[bot]".
LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}(?:\[bot\])?$")
REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# Characters that git check-ref-format rejects anywhere in a ref name.
REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")

Action = Literal["deploy", "cleanup"]


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
    for component in ref.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            return "has a component that starts with '.' or ends with '.lock'"
    return None


class PreviewRequest(BaseModel):
    """The pull request's data that a run needs; every field is validated on the way in."""

    model_config = ConfigDict(frozen=True)

    action: Action
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
        if value and not LOGIN.fullmatch(value):
            raise ValueError("is not a valid login")
        return value

    @field_validator("repository")
    @classmethod
    def _check_repository(cls, value: str) -> str:
        if value and not REPOSITORY.fullmatch(value):
            raise ValueError("must be <owner>/<name>")
        return value

    @model_validator(mode="after")
    def _check_deploy_has_sha(self) -> Self:
        if self.action == "deploy" and self.sha is None:
            raise ValueError("a deploy request needs the head SHA")
        return self
