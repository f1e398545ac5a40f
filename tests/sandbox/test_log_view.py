"""The redacted run log that a pull request's author opens behind the preview's token."""

import pytest

from tests.sandbox.conftest import ARTIFACTS

pytestmark = pytest.mark.sandbox

LOGS = "/var/lib/pr-previews/logs"


def log_url(number: int, ident: str) -> str:
    return f"https://pr-{number}.previews.test:8443/_previews/logs/{ident}.txt"


def with_token(host, number: int) -> dict[str, str]:
    return {"Cookie": f"__Host-preview_token={host.token(number)}"}


def recorded_log_url(host, ident: str) -> str:
    """The log URL the run recorded in its facts, which the forge reports link to."""
    return host.run(
        "sh",
        "-c",
        f"grep -rhoE 'https://[^\"]*_previews/logs/[^\"]*' {ARTIFACTS / ident}/job_events | sort -u",
    ).strip()


def test_log_of_a_deploy_is_served_behind_the_token(host):
    host.open(60, "Logged deploy")
    ident = host.previews()[60]["last_run"]
    url = log_url(60, ident)

    page = host.get(url, headers=with_token(host, 60))

    assert page.status == 200
    assert "PLAY RECAP" in page.text
    assert page.headers["Content-Type"].startswith("text/plain")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert host.get(url).status == 403
    assert host.get(url, headers={"Cookie": "__Host-preview_token=wrong"}).status == 403
    assert recorded_log_url(host, ident) == url


def test_log_is_not_served_to_another_previews_token(host):
    host.open(62, "Second logged deploy")
    ident = host.previews()[62]["last_run"]

    page = host.get(log_url(62, ident), headers=with_token(host, 60))

    assert page.status == 403


def test_failed_first_deploy_links_its_log(host):
    sha = host.push(61, "Broken from the start", {"FAIL_BUILD": "no semicolon"})
    ident = host.deliver("opened", 61, sha)

    assert host.wait(ident) == "failed"

    front = host.get("https://pr-61.previews.test:8443/", headers=with_token(host, 61))
    assert front.status == 503
    assert log_url(61, ident) in front.text
    log = host.get(log_url(61, ident), headers=with_token(host, 61))
    assert log.status == 200
    assert "build failed on purpose: no semicolon" in log.text
    assert host.get("https://pr-61.previews.test:8443/").status == 403


def test_failed_update_keeps_serving_and_links_its_log(host):
    good = host.open(63, "Good first")
    broken = host.push(63, "Break it", {"FAIL_BUILD": "typo"})
    ident = host.deliver("synchronize", 63, broken)

    assert host.wait(ident) == "failed"

    page = host.get("https://pr-63.previews.test:8443/", headers=with_token(host, 63))
    assert page.status == 200
    assert good in page.text
    log = host.get(log_url(63, ident), headers=with_token(host, 63))
    assert "build failed on purpose: typo" in log.text


def test_published_logs_hold_no_token(host):
    host.open(64, "Print the environment", {"PRINT_ENV": "yes"})
    tokens = host.run("sh", "-c", "cat /var/lib/pr-previews/tokens/*").split()

    for token in tokens:
        found = host.sandbox.run(["grep", "-rlF", token, LOGS], capture_output=True)
        assert found.returncode == 1, found.stdout


def test_cleanup_removes_the_logs(host):
    sha = host.open(65, "Short-lived")
    ident = host.deliver("closed", 65, sha)

    assert host.wait(ident) == "successful"

    assert host.run("sh", "-c", f"ls -d {LOGS}/demo-pr65 2>/dev/null || true").strip() == ""
