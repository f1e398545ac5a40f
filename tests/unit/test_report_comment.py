"""The preview comment's text and the URL filter that keeps tokens out of it."""

import re

import pytest

from bridge.report import PreviewReport
from bridge.report.comment import Phase, marker, render, token_free

SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def preview(**overrides):
    fields = {
        "repository": "octo/demo",
        "number": 1,
        "sha": SHA,
        "preview_id": "demo-pr1",
        "urls": {"web": "https://pr-1.previews.test/", "api": "https://pr-1-api.previews.test/"},
        "log_url": "https://previews.example.test/runs/r1/log",
        "run": "r1",
    }
    fields.update(overrides)
    return PreviewReport(**fields)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://pr-1.previews.test/", "https://pr-1.previews.test/"),
        ("https://pr-1.previews.test", "https://pr-1.previews.test/"),
        ("https://pr-1.previews.test:8443/app", "https://pr-1.previews.test:8443/app"),
        ("https://pr-1.previews.test/?token=abc", "https://pr-1.previews.test/"),
        ("https://pr-1.previews.test/#token=abc", "https://pr-1.previews.test/"),
        ("https://user:secret@pr-1.previews.test/", "https://pr-1.previews.test/"),
        ("http://[::1]:8080/x?y=1", "http://[::1]:8080/x"),
        ("javascript:alert(1)", ""),
        ("ftp://pr-1.previews.test/", ""),
        ("https://pr-1.previews.test/a)b", ""),
        ("https://pr-1.previews.test/a b", ""),
        ("not a url", ""),
        ("", ""),
    ],
)
def test_token_free(url, expected):
    assert token_free(url) == expected


def test_render_marker_first():
    for phase in Phase:
        assert render(preview(), phase).splitlines()[0] == marker("demo-pr1")


def test_render_deployed_lists_urls_in_order():
    body = render(preview(), Phase.DEPLOYED)

    web = body.index("| web | https://pr-1.previews.test/ |")
    api = body.index("| api | https://pr-1-api.previews.test/ |")
    assert web < api
    assert "[Run log](https://previews.example.test/runs/r1/log)" in body


def test_render_drops_unsafe_urls():
    body = render(preview(urls={"web": "javascript:alert(1)"}), Phase.DEPLOYED)

    assert "javascript" not in body


def test_render_escapes_reason():
    body = render(preview(), Phase.BLOCKED, "see [this](https://evil.test) <img src=x>\n# @alice")

    assert "](https://evil.test)" not in body
    assert re.search(r"(?<!\\)<img", body) is None
    assert "\\<img" in body
    assert "\n# " not in body
    assert "@alice" not in body
    assert "alice" in body


def test_render_escapes_service_names():
    body = render(preview(urls={"a|b": "https://pr-1.previews.test/"}), Phase.DEPLOYED)

    assert "| a\\|b | https://pr-1.previews.test/ |" in body


def test_render_run_stays_in_code_span():
    body = render(preview(run="r`1\nx"), Phase.DEPLOYING)

    assert "run `r'1 x`" in body


def test_primary_url_is_first_service():
    assert preview().primary_url == "https://pr-1.previews.test/"
    assert preview(urls={}).primary_url == ""
