"""End to end on the sandbox host: signed webhooks, ansible-runner, systemd, nginx over TLS."""

import http.client
import json
import socket
import time

import pytest
import websockets.sync.client
from websockets.exceptions import InvalidStatus

from bridge import demo, origin
from tests.sandbox.conftest import wait_until

pytestmark = pytest.mark.sandbox

SERVICES = ("web", "api", "chat")
POOL = range(40000, 50000)


@pytest.fixture(scope="module")
def first(host):
    """PR 1, opened once for the tests that only look at it."""
    sha = host.open(1, "First preview")
    return sha


def base_url(url: str) -> str:
    return url.split("?", 1)[0]


def cookie_from(response) -> str:
    return response.headers["Set-Cookie"].split(";", 1)[0]


def test_opened_serves_every_service_with_token(host, first):
    urls = host.urls(1)

    assert list(urls) == list(SERVICES)
    assert base_url(urls["web"]) == "https://pr-1.previews.test:8443/"
    assert base_url(urls["api"]) == "https://pr-1-api.previews.test:8443/"
    assert base_url(urls["chat"]) == "https://pr-1-chat.previews.test:8443/"
    for service, url in urls.items():
        visit = host.get(url)
        assert visit.status == 302, service
        assert visit.headers["Location"] == base_url(url), service
        page = host.get(base_url(url), headers={"Cookie": cookie_from(visit)})
        assert page.status == 200, service
        assert first in page.text, service


def test_no_token_is_forbidden(host, first):
    for url in host.urls(1).values():
        assert host.get(base_url(url)).status == 403
        assert host.get(base_url(url) + "?token=wrong").status == 403
        assert (
            host.get(base_url(url), headers={"Cookie": "__Host-preview_token=wrong"}).status == 403
        )


def test_token_visit_sets_strict_cookie(host, first):
    visit = host.get(host.urls(1)["web"])
    attributes = [part.strip() for part in visit.headers["Set-Cookie"].split(";")]

    assert attributes[0] == f"__Host-preview_token={host.token(1)}"
    assert "HttpOnly" in attributes
    assert "Secure" in attributes
    assert "SameSite=Lax" in attributes
    assert "Path=/" in attributes


def test_token_redirect_keeps_other_parameters(host, first):
    url = base_url(host.urls(1)["web"]) + f"page?a=1&token={host.token(1)}&b=2"

    visit = host.get(url)

    assert visit.status == 302
    assert visit.headers["Location"] == "https://pr-1.previews.test:8443/page?a=1&b=2"


def test_header_token_opens_and_sets_cookie(host, first):
    response = host.get(base_url(host.urls(1)["api"]), headers={"X-Preview-Token": host.token(1)})

    assert response.status == 200
    assert json.loads(response.body)["revision"] == first
    assert response.headers["Set-Cookie"].startswith("__Host-preview_token=")


def test_cookie_opens_assets(host, first):
    cookie = f"__Host-preview_token={host.token(1)}"
    page = host.get("https://pr-1.previews.test:8443/", headers={"Cookie": cookie})
    stylesheet = page.text.split('href="', 1)[1].split('"', 1)[0]

    asset = host.get(f"https://pr-1.previews.test:8443{stylesheet}", headers={"Cookie": cookie})

    assert stylesheet.startswith("/assets/app.")
    assert asset.status == 200
    assert first in asset.text


def connect_websocket(host, cookie: str | None):
    sock = socket.create_connection(("127.0.0.1", 8443), timeout=10)
    headers = {"Cookie": cookie} if cookie else {}
    return websockets.sync.client.connect(
        "wss://pr-1-chat.previews.test:8443/ws",
        sock=sock,
        ssl=host.context,
        additional_headers=headers,
        open_timeout=10,
    )


def test_websocket_upgrade_with_cookie(host, first):
    with connect_websocket(host, f"__Host-preview_token={host.token(1)}") as connection:
        greeting = connection.recv(timeout=10)
        connection.send("ping")
        echo = connection.recv(timeout=10)

    assert greeting == f"hello from {first[:12]}"
    assert echo == "echo: ping"


def test_websocket_without_cookie_is_forbidden(host, first):
    with pytest.raises(InvalidStatus) as error:
        connect_websocket(host, None)

    assert error.value.response.status_code == 403


def test_token_never_logged(host, first):
    host.get(host.urls(1)["web"])
    host.get(host.urls(1)["web"] + "&x=1")
    token = host.token(1)

    logs = host.run("sh", "-c", "cat /var/log/nginx/*.log")

    assert "pr-1.previews.test" in logs
    assert token not in logs


def test_upstream_never_sees_token(host, first):
    log = host.run("journalctl", "--no-pager", "-u", "demo-pr1-*")

    assert host.token(1) not in log


def test_bad_signature_starts_no_run(host, first):
    before = host.runs()
    payload = origin.pull_request_payload("opened", 7, first, "feature")
    body, headers = origin.signed_delivery(b"not-the-secret-at-all-0123456789", payload)
    unsigned = dict(headers)
    del unsigned["X-Hub-Signature-256"]

    for sent in (headers, unsigned, {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}):
        status, _ = demo.post(body, sent)
        assert status == 401

    time.sleep(2)
    assert host.runs() == before
    assert 7 not in host.previews()


def test_same_sha_again_changes_nothing(host, first):
    rc, recap, output = host.playbook(
        "playbooks/deploy.yml", "-e", "preview_pr=1", "-e", f"preview_sha={first}"
    )

    assert rc == 0, output
    assert recap["changed"] == 0, output
    assert recap["failed"] == 0


def test_check_diff_runs_clean(host, first):
    rc, recap, output = host.playbook(
        "playbooks/deploy.yml",
        "--check",
        "--diff",
        "-e",
        "preview_pr=1",
        "-e",
        f"preview_sha={first}",
    )

    assert rc == 0, output
    assert recap["changed"] == 0, output
    assert recap["failed"] == 0
    assert host.token(1) not in output


def serving(host, number: int) -> str:
    page = host.get(
        f"https://pr-{number}.previews.test:8443/",
        headers={"Cookie": f"__Host-preview_token={host.token(number)}"},
    )
    assert page.status == 200
    return page.text.split('id="revision">', 1)[1].split("<", 1)[0]


def test_synchronize_then_failed_build(host):
    opened = host.open(2, "Open PR 2")
    updated = host.push(2, "Update PR 2")

    status = host.wait(host.deliver("synchronize", 2, updated))

    assert status == "successful"
    assert serving(host, 2) == updated

    broken = host.push(2, "Break the build", {"FAIL_BUILD": "missing semicolon"})
    ident = host.deliver("synchronize", 2, broken)
    status = host.wait(ident)

    assert status == "failed"
    assert "build failed on purpose: missing semicolon" in host.stdout(ident)
    assert serving(host, 2) == updated
    assert opened != updated
    entry = host.previews()[2]
    assert entry["sha"] == updated
    assert entry["status"] == "failed"
    releases = host.run("ls", "/srv/previews/demo-pr2/releases")
    assert broken not in releases


def test_service_exiting_at_start_fails_deploy(host):
    sha = host.push(3, "Crash the chat service", {"CRASH_ON_START": "chat"})

    ident = host.deliver("opened", 3, sha)
    status = host.wait(ident)

    assert status == "failed"
    log = host.stdout(ident)
    assert "demo-pr3-chat.service failed to start" in log
    assert "refusing to start" in log
    assert host.previews()[3]["status"] == "failed"


def test_concurrent_previews_get_distinct_ports(host):
    first_sha = host.push(8600, "Open PR 8600")
    second_sha = host.push(18600, "Open PR 18600")

    idents = [host.deliver("opened", 8600, first_sha), host.deliver("opened", 18600, second_sha)]

    assert [host.wait(ident) for ident in idents] == ["successful", "successful"]
    previews = host.previews()
    ports = [*previews[8600]["ports"].values(), *previews[18600]["ports"].values()]
    assert len(ports) == 6
    assert len(set(ports)) == 6
    assert all(port in POOL for port in ports)
    assert serving(host, 8600) == first_sha
    assert serving(host, 18600) == second_sha


def test_closed_leaves_nothing(host):
    sha = host.open(4, "Open PR 4")
    ports = host.previews()[4]["ports"]
    token = host.token(4)

    status = host.wait(host.deliver("closed", 4, sha))

    assert status == "successful"
    assert 4 not in host.previews()
    assert (
        host.run("sh", "-c", "ls /etc/systemd/system | grep -c '^demo-pr4-' || true").strip() == "0"
    )
    assert "demo-pr4" not in host.run(
        "systemctl", "list-units", "--all", "--no-legend", "demo-pr4-*"
    )
    assert (
        host.run(
            "sh",
            "-c",
            "ls /etc/nginx/previews.d /var/lib/pr-previews/ports /var/lib/pr-previews/tokens /srv/previews",
        ).count("demo-pr4")
        == 0
    )
    listening = host.run("ss", "-Htln")
    for port in ports.values():
        assert f":{port} " not in listening
    assert token not in host.run("sh", "-c", "cat /etc/nginx/previews.d/* 2>/dev/null || true")
    wait_until(lambda: host.get("https://pr-4.previews.test:8443/").status == 410)
    assert host.get("https://pr-4.previews.test:8443/").status == 410


def test_token_cookie_never_reaches_service(host, first):
    token = host.token(1)
    cookies = f"a=1; __Host-preview_token={token}; b=2; __HOST-PREVIEW_TOKEN={token}"

    response = host.get("https://pr-1.previews.test:8443/", headers={"Cookie": cookies})

    assert response.status == 200
    assert token not in host.run("journalctl", "--no-pager", "-u", "demo-pr1-*")


def test_http_redirect_keeps_path_encoded(host, first):
    connection = http.client.HTTPConnection("127.0.0.1", 8080, timeout=10)
    try:
        connection.request(
            "GET", "/x%0d%0aX-Injected:%201?a=1", headers={"Host": "pr-1.previews.test"}
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()

    assert response.status == 301
    assert response.getheader("X-Injected") is None
    assert (
        response.getheader("Location")
        == "https://pr-1.previews.test:8443/x%0d%0aX-Injected:%201?a=1"
    )
