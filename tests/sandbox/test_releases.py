"""Releases on the sandbox host: keep-last-good, rollback, broken vhosts, busy ports."""

import json
import urllib.request

import pytest

from bridge import demo
from tests.sandbox.conftest import wait_until

pytestmark = pytest.mark.sandbox

SERVICES = ("web", "api", "chat")
PREVIEWS = "/srv/previews"
VHOSTS = "/etc/nginx/previews.d"
PREVIEWS_COMMAND = str(demo.VENV_BIN / "previews")


def revisions(host, number: int) -> dict[str, str]:
    """Return the revision that each service of the preview serves through nginx."""
    cookie = {"Cookie": f"__Host-preview_token={host.token(number)}"}
    served = {}
    for service in SERVICES:
        label = f"pr-{number}" if service == "web" else f"pr-{number}-{service}"
        page = host.get(f"https://{label}.previews.test:8443/", headers=cookie)
        assert page.status == 200, (service, page.status, page.text)
        if service == "web":
            served[service] = page.text.split('id="revision">', 1)[1].split("<", 1)[0]
        elif service == "api":
            served[service] = json.loads(page.body)["revision"]
        else:
            served[service] = page.text.split(" ", 2)[1].rstrip(":")
    return served


def serves(host, number: int, sha: str) -> bool:
    return revisions(host, number) == dict.fromkeys(SERVICES, sha)


def releases(host, number: int) -> set[str]:
    return set(host.run("ls", f"{PREVIEWS}/demo-pr{number}/releases").split())


def current(host, number: int) -> str:
    return host.run("readlink", f"{PREVIEWS}/demo-pr{number}/current").strip()


def unit_sha(host, number: int, service: str) -> str:
    environment = host.run(
        "systemctl", "show", "--property=Environment", "--value", f"demo-pr{number}-{service}"
    )
    return environment.split("PREVIEW_SHA=", 1)[1].split()[0]


def previews_command(host, *arguments: str):
    """Run the previews CLI in the sandbox as root; return the completed process."""
    return host.sandbox.run([PREVIEWS_COMMAND, *arguments], capture_output=True)


def deploy(host, number: int, sha: str) -> tuple[str, str]:
    """Deliver "synchronize" for sha and return the run's status and output."""
    ident = host.deliver("synchronize", number, sha)
    return host.wait(ident), host.stdout(ident)


# Keep-last-good and rollback share PR 30, whose releases grow from fixture to fixture:
# A serves, B and C crash at start, D serves again, then rollbacks.


@pytest.fixture(scope="module")
def crashed(host):
    """PR 30: A serves, then B, whose chat service exits at start, fails its deploy."""
    first = host.open(30, "Serve A")
    crashing = host.push(30, "Crash chat", {"CRASH_ON_START": "chat"})
    status, output = deploy(host, 30, crashing)
    return {"A": first, "B": crashing, "status": status, "output": output}


@pytest.fixture(scope="module")
def recovered(host, crashed):
    """PR 30 goes on: C still crashes, D serves."""
    still_crashing = host.push(30, "Still crash chat")
    status, _ = deploy(host, 30, still_crashing)
    assert status == "failed"
    fixed = host.push(30, "Fix chat", {"CRASH_ON_START": None})
    status, output = deploy(host, 30, fixed)
    assert status == "successful", output
    return {**crashed, "C": still_crashing, "D": fixed}


@pytest.fixture(scope="module")
def rolled_back(host, recovered):
    """PR 30 is rolled back from D to A, the good release that served before it."""
    before = host.runs()
    result = previews_command(host, "rollback", "30")
    [ident] = host.runs() - before
    return {**recovered, "result": result, "ident": ident}


def test_failed_health_check_keeps_previous_release(host, crashed):
    first, crashing = crashed["A"], crashed["B"]

    assert crashed["status"] == "failed"
    assert "demo-pr30-chat.service failed to start" in crashed["output"]
    assert f"Release {first}, which served before, serves again." in crashed["output"]
    assert serves(host, 30, first)
    assert current(host, 30) == f"releases/{first}"
    for service in SERVICES:
        assert unit_sha(host, 30, service) == first, service
    entry = host.previews()[30]
    assert entry["sha"] == first
    assert entry["status"] == "failed"
    assert f"{crashing}.failed" in releases(host, 30)


def test_failed_releases_not_counted_or_kept(host, recovered):
    first, fixed = recovered["A"], recovered["D"]

    # Three releases are kept by default. Had the failed B and C counted, A would be gone.
    assert releases(host, 30) == {first, f"{first}.ok", fixed, f"{fixed}.ok"}
    assert current(host, 30) == f"releases/{fixed}"
    assert serves(host, 30, fixed)
    assert host.previews()[30]["status"] == "active"


def test_rollback_serves_previous_good_release(host, rolled_back):
    first, fixed = rolled_back["A"], rolled_back["D"]
    result = rolled_back["result"]

    assert result.returncode == 0, result.stdout + result.stderr
    assert serves(host, 30, first)
    assert current(host, 30) == f"releases/{first}"
    for service in SERVICES:
        assert unit_sha(host, 30, service) == first, service
    assert "rolled it back" in host.run("cat", f"{PREVIEWS}/demo-pr30/releases/{fixed}.failed")


def test_rollback_shows_in_registry(host, rolled_back):
    first = rolled_back["A"]

    [entry] = [
        preview
        for preview in json.loads(host.run(PREVIEWS_COMMAND, "list", "--json"))
        if preview["number"] == 30
    ]
    history = json.loads(host.run(PREVIEWS_COMMAND, "history", "30", "--json"))

    assert entry["sha"] == first
    assert entry["status"] == "active"
    assert entry["ref"] == "feature"
    assert entry["last_run"] == rolled_back["ident"]
    assert list(entry["urls"]) == list(SERVICES)
    assert history[-1]["action"] == "rollback"
    assert history[-1]["status"] == "successful"
    assert history[-1]["sha"] == first


def test_rollback_without_earlier_release_fails(host, rolled_back):
    first = rolled_back["A"]
    releases_before = releases(host, 30)

    result = previews_command(host, "rollback", "30")

    assert result.returncode == 1
    assert "demo-pr30 has no earlier good release to roll back to" in result.stdout
    assert "Nothing was changed." in result.stdout
    assert releases(host, 30) == releases_before
    assert current(host, 30) == f"releases/{first}"
    assert serves(host, 30, first)
    entry = host.previews()[30]
    assert entry["sha"] == first
    assert entry["status"] == "active"


def test_rollback_of_unknown_preview_fails(host):
    before = host.runs()

    result = previews_command(host, "rollback", "39")

    assert result.returncode == 1
    assert "PR 39 has no preview that serves a release" in result.stderr
    assert host.runs() == before
    assert 39 not in host.previews()


def test_rollback_playbook_without_releases_fails(host):
    rc, _, output = host.playbook("playbooks/rollback.yml", "-e", "preview_pr=38")

    assert rc != 0
    assert "demo-pr38 has no earlier good release to roll back to" in output
    assert "Nothing was changed." in output
    assert 38 not in host.previews()
    assert host.sandbox.run(["test", "-e", f"{PREVIEWS}/demo-pr38"]).returncode != 0


# Broken vhosts: PRs 32, 33 and 34.


@pytest.fixture(scope="module")
def two_previews(host):
    """PRs 32 and 33, opened at the same time."""
    shas = {number: host.push(number, f"Open PR {number}") for number in (32, 33)}
    idents = [host.deliver("opened", number, sha) for number, sha in shas.items()]
    assert [host.wait(ident) for ident in idents] == ["successful", "successful"]
    return shas


def test_broken_vhost_spares_other_deploys(host, two_previews):
    host.run("sh", "-c", f"echo 'garbage here;' >> {VHOSTS}/demo-pr32.conf")

    third = host.push(34, "Open PR 34")
    ident = host.deliver("opened", 34, third)
    status = host.wait(ident)

    output = host.stdout(ident)
    assert status == "successful", output
    assert f"nginx rejected {VHOSTS}/demo-pr32.conf" in output
    assert f"moved to {VHOSTS}/demo-pr32.conf.broken" in output
    vhosts = set(host.run("ls", VHOSTS).split())
    assert {"demo-pr32.conf.broken", "demo-pr33.conf", "demo-pr34.conf"} <= vhosts
    assert "demo-pr32.conf" not in vhosts
    assert host.sandbox.run(["nginx", "-t", "-q"]).returncode == 0
    assert serves(host, 33, two_previews[33])
    assert serves(host, 34, third)


def test_quarantined_preview_deploys_again(host, two_previews):
    if host.sandbox.run(["test", "-e", f"{VHOSTS}/demo-pr32.conf.broken"]).returncode != 0:
        pytest.skip("needs the vhost that test_broken_vhost_spares_other_deploys moved aside")

    updated = host.push(32, "Update PR 32")
    status, output = deploy(host, 32, updated)

    assert status == "successful", output
    assert "garbage" not in host.run("cat", f"{VHOSTS}/demo-pr32.conf")
    wait_until(lambda: serves(host, 32, updated))


def test_broken_base_config_fails_clearly(host, two_previews):
    vhosts = host.run("ls", VHOSTS)
    host.run("sh", "-c", "echo 'garbage;' > /etc/nginx/conf.d/zz-broken.conf")
    try:
        rc, _, output = host.playbook(
            "playbooks/deploy.yml", "-e", "preview_pr=33", "-e", f"preview_sha={two_previews[33]}"
        )
    finally:
        host.run("rm", "-f", "/etc/nginx/conf.d/zz-broken.conf")

    assert rc != 0
    assert "nginx -t fails on /etc/nginx/conf.d/zz-broken.conf" in output
    assert "no preview vhost was moved" in output
    assert host.run("ls", VHOSTS) == vhosts
    assert serves(host, 33, two_previews[33])


# Busy ports: PR 35 deploys from a pool of five ports, two of them taken.

POOL_START = 47100
FOREIGN_PORTS = (47100, 47102)


def foreign_answers(port: int) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def foreign_listeners(host):
    """Start two HTTP servers outside any preview, listening on ports of the pool."""
    for port in FOREIGN_PORTS:
        host.run(
            "systemd-run",
            f"--unit=foreign-listener-{port}",
            "--quiet",
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            "/tmp",
            str(port),
        )
    try:
        for port in FOREIGN_PORTS:
            wait_until(lambda port=port: foreign_answers(port))
        yield FOREIGN_PORTS
    finally:
        for port in FOREIGN_PORTS:
            host.sandbox.run(["systemctl", "stop", f"foreign-listener-{port}"])


def test_busy_pool_ports_are_skipped(host, foreign_listeners):
    sha = host.push(35, "Open PR 35")

    rc, _, output = host.playbook(
        "playbooks/deploy.yml",
        "-e",
        "preview_pr=35",
        "-e",
        f"preview_sha={sha}",
        "-e",
        f"previews_port_range_start={POOL_START}",
        "-e",
        f"previews_port_range_end={POOL_START + 4}",
    )

    assert rc == 0, output
    ports = host.previews()[35]["ports"]
    assert sorted(ports.values()) == [47101, 47103, 47104]
    assert serves(host, 35, sha)
    for port in foreign_listeners:
        assert foreign_answers(port), port
