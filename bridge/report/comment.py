"""The pull-request comment that shows a preview's state, found again by a hidden marker."""

from __future__ import annotations

import enum
import re
from urllib.parse import urlsplit, urlunsplit

from bridge.report.model import PreviewReport

SHORT_SHA_LENGTH = 12
MAX_REASON_LENGTH = 500
# Characters that Markdown or a table cell would read as syntax. A URL needs none of them
# once its query string is gone, so a URL that contains one is dropped, not escaped.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")
SAFE_URL = re.compile(r"^https?://[^\s<>()|`\\\"']+$")


class Phase(enum.Enum):
    """The state of a preview that a comment or a status shows."""

    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    FAILED = "failed"
    REMOVED = "removed"
    BLOCKED = "blocked"


def marker(preview_id: str) -> str:
    """Return the HTML comment that starts the preview's comment; forges render it as nothing."""
    return f"<!-- pr-previews:{preview_id} -->"


def token_free(url: str) -> str:
    """Return url without user info, query string and fragment, or "" if it is no safe http(s) URL.

    A preview's access token travels as ?token=, and an API token could sit in user info,
    so neither part is ever posted.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    netloc = parts.netloc.rpartition("@")[2]
    cleaned = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
    return cleaned if SAFE_URL.fullmatch(cleaned) else ""


def render(preview: PreviewReport, phase: Phase, reason: str = "") -> str:
    """Return the comment body for the preview in the given phase, marker first."""
    lines = [marker(preview.preview_id), "", _headline(preview, phase, reason)]
    if phase is Phase.DEPLOYED:
        lines += ["", *_url_table(preview)]
        lines += ["", "Each preview asks for its own access token, which this comment never shows."]
    log_url = token_free(preview.log_url)
    footer = []
    if log_url:
        footer.append(f"[Run log]({log_url})")
    if preview.run:
        footer.append(f"run `{_escape_code(preview.run)}`")
    if footer:
        lines += ["", " · ".join(footer)]
    return "\n".join(lines) + "\n"


def _headline(preview: PreviewReport, phase: Phase, reason: str) -> str:
    name = f"**Preview `{_escape_code(preview.preview_id)}`**"
    commit = f"`{_escape_code(preview.sha[:SHORT_SHA_LENGTH])}`"
    if phase is Phase.DEPLOYING:
        return f"{name}: deploying commit {commit}."
    if phase is Phase.DEPLOYED:
        return f"{name}: commit {commit} is deployed."
    if phase is Phase.FAILED:
        return f"{name}: the deploy of commit {commit} failed. The run log shows why."
    if phase is Phase.REMOVED:
        return f"{name}: removed."
    return f"{name}: commit {commit} is not deployed. {_escape_text(reason)}"


def _url_table(preview: PreviewReport) -> list[str]:
    rows = ["| Service | URL |", "| --- | --- |"]
    for service, url in preview.urls.items():
        safe = token_free(url)
        if safe:
            rows.append(f"| {_escape_text(service)} | {safe} |")
    return rows


def _escape_text(text: str) -> str:
    """Escape text so that it renders as itself on one line, with no links, mentions or HTML."""
    one_line = " ".join(text.split())[:MAX_REASON_LENGTH]
    escaped = MARKDOWN_SPECIAL.sub(r"\\\1", one_line)
    # A zero-width joiner after @ breaks the @login pattern that forges turn into mentions.
    return escaped.replace("@", "@\u200d")


def _escape_code(text: str) -> str:
    """Keep text inside one code span: backticks and line breaks would end it."""
    return " ".join(text.split()).replace("`", "'")
