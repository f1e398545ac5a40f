"""Audit and reconcile on the sandbox host: orphans, gone hosts, runs killed midway."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from bridge import demo, origin
from tests.sandbox.conftest import ARTIFACTS, wait_until
from tests.sandbox.test_operations import bridge_idle, leftovers, run_started, served
from tests.sandbox.test_stale import runs_of

pytestmark = pytest.mark.sandbox

PREVIEWS = str(demo.VENV_BIN / "previews")
PROJECT_DIR = Path(__file__).parents[2]
GONE = "/var/lib/pr-previews/gone"
STORE = "/var/lib/pr-previews/git/demo.git"
GONE_PAGE = "This preview was removed.\n"
NOT_FOUND_PAGE = "No preview at this address.\n"

# Resources of previews that no run ever made, one kind each.
PLANT_ORPHANS = """
set -e
printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/demo-pr9001-web.service
systemctl daemon-reload
systemctl start demo-pr9001-web.service
cat > /etc/nginx/previews.d/demo-pr9002.conf <<'EOF'
server {
    listen 127.0.0.1:8443 ssl;
    server_name pr-9002.previews.test;
    ssl_certificate /etc/ssl/previews/wildcard.crt;
    ssl_certificate_key /etc/ssl/previews/wildcard.key;
    return 200 "planted\\n";
}
EOF
nginx -t -q
systemctl reload nginx
mkdir -p /srv/previews/demo-pr9003/data/web
printf '{"web": 49990}\\n' > /var/lib/pr-previews/ports/demo-pr9004.json
mkdir -p /srv/previews/demo-pr9005/data
mount -t tmpfs planted /srv/previews/demo-pr9005/data
"""
PLANTED = {
    "demo-pr9001": {"unit file", "unit"},
    "demo-pr9002": {"vhost"},
    "demo-pr9003": {"release directory"},
    "demo-pr9004": {"port reservation"},
    "demo-pr9005": {"release directory"},
}


def cli(host, *args: str) -> subprocess.CompletedProcess[str]:
    return host.sandbox.run([PREVIEWS, *args], capture_output=True)


def audit(host) -> dict:
    result = cli(host, "audit", "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def findings(host) -> dict[str, dict]:
    return {finding["preview_id"]: finding for finding in audit(host)["findings"]}


def status_of(host, url: str, token_of: int | None = None) -> int:
    headers = {"X-Preview-Token": host.token(token_of)} if token_of else None
    return host.get(url, headers=headers).status


def url(number: int, service: str = "") -> str:
    label = f"pr-{number}-{service}" if service else f"pr-{number}"
    return f"https://{label}.previews.test:8443/"


def deploying(host) -> list[int]:
    return [
        number for number, preview in host.previews().items() if preview["status"] == "deploying"
    ]


def runs_idle(host) -> bool:
    units = host.run("systemctl", "list-units", "--plain", "--no-legend", "previews-run-*")
    return bridge_idle(host) and not units.strip()


def describe_runs(host, number: int) -> str:
    """Describe the preview's runs, with the end of each log, for a failed assertion."""
    return "\n".join(
        f"{run['ident']} {run['status']}:\n{host.stdout(run['ident'])[-2000:]}"
        for run in runs_of(host, number)
    )


def runner_pid(host, ident: str) -> int:
    """Return the PID of the run's ansible-runner, the main process of its transient unit."""
    unit = f"previews-run-{ident}.service"
    pids = host.run("pgrep", "--full", f"previews run deploy [0-9]+ [0-9a-f]+ {ident} ")
    main = host.run("systemctl", "show", "--property=MainPID", "--value", unit).strip()
    assert main in pids.split(), (main, pids)
    assert unit in host.run("cat", f"/proc/{main}/cgroup")
    return int(main)


def bridge_restarts(host) -> int:
    return int(host.run("systemctl", "show", "--property=NRestarts", "--value", "previews-bridge"))


def build_running(host, number: int) -> bool:
    return (
        host.sandbox.run(["systemctl", "is-active", "--quiet", f"demo-pr{number}-build"]).returncode
        == 0
    )


def test_planted_orphans_are_listed_then_removed(host):
    live = host.open(70, "Live next to orphans")
    host.run("sh", "-c", PLANT_ORPHANS)
    before = leftovers(host, 70)
    try:
        found = findings(host)
        assert set(found) == set(PLANTED), found
        for preview_id, kinds in PLANTED.items():
            assert {r["kind"] for r in found[preview_id]["resources"]} == kinds
            assert found[preview_id]["reason"] == "orphaned"
        assert cli(host, "audit").returncode == 1
        assert cli(host, "reconcile", "--dry-run").returncode == 0
        assert set(findings(host)) == set(PLANTED)

        # The mount point makes the cleanup of demo-pr9005 fail; the others go on.
        result = cli(host, "reconcile")

        assert result.returncode == 1, result.stdout + result.stderr
        assert "1 of 5 cleanups failed: demo-pr9005" in result.stdout
        assert set(findings(host)) == {"demo-pr9005"}
    finally:
        host.sandbox.run(["umount", "/srv/previews/demo-pr9005/data"])

    result = cli(host, "reconcile")

    assert result.returncode == 0, result.stdout + result.stderr
    assert findings(host) == {}
    assert cli(host, "audit").returncode == 0
    assert "demo-pr9001" not in host.run("systemctl", "list-units", "--all", "demo-pr9001-*")
    assert (
        host.run("sh", "-c", "ls /srv/previews /var/lib/pr-previews/ports").count("demo-pr900") == 0
    )
    assert host.get(url(9002)).status == 410
    # The live preview kept all it had, and serves.
    assert leftovers(host, 70) == before
    assert served(host, 70) == live
    assert live in host.get(url(70), headers={"X-Preview-Token": host.token(70)}).text


def test_removed_preview_answers_410_until_redeployed(host):
    sha = host.open(71, "Soon gone")

    assert host.wait(host.deliver("closed", 71, sha)) == "successful"

    for service in ("", "api", "chat"):
        page = host.get(url(71, service))
        assert (page.status, page.text) == (410, GONE_PAGE)
    markers = set(host.run("ls", GONE).split())
    assert {"pr-71.previews.test", "pr-71-api.previews.test", "pr-71-chat.previews.test"} <= markers
    unknown = host.get(url(999999))
    assert (unknown.status, unknown.text) == (404, NOT_FOUND_PAGE)
    assert host.get(url(71, "nope")).status == 404
    assert findings(host) == {}

    reopened = host.wait(host.deliver("reopened", 71, sha))

    assert reopened == "successful"
    assert status_of(host, url(71), token_of=71) == 200
    assert host.get(url(71)).status == 403
    assert "pr-71" not in host.run("ls", GONE)


# Another site on the same address whose names would also match the preview domain.
OTHER_SITE = """
server {
    listen 127.0.0.1:8080;
    server_name *.test ~.;
    return 200 "other site\\n";
}
"""


def get_over_http(host, host_header: str) -> str:
    """Return the status code and the body of GET / on nginx's HTTP port, with this Host."""
    output = host.run(
        "curl",
        "--silent",
        "--write-out",
        "%{http_code}",
        "--header",
        f"Host: {host_header}",
        "http://127.0.0.1:8080/",
    )
    return f"{output[-3:]} {output[:-3].strip()}"


@pytest.fixture(scope="module")
def other_site(host):
    host.run("sh", "-c", f"cat > /etc/nginx/sites-enabled/other-site <<'EOF'{OTHER_SITE}EOF")
    host.run("sh", "-c", f"echo demo-pr76 > {GONE}/pr-76.previews.test")
    host.run("systemctl", "reload", "nginx")
    # systemctl reload returns before the new workers respond.
    wait_until(lambda: get_over_http(host, "elsewhere.test") == "200 other site")
    yield
    host.run("rm", "-f", "/etc/nginx/sites-enabled/other-site", f"{GONE}/pr-76.previews.test")
    host.run("systemctl", "reload", "nginx")
    wait_until(lambda: get_over_http(host, "elsewhere.test").startswith("404"))


@pytest.mark.parametrize(
    ("host_header", "expected"),
    [
        ("pr-76.previews.test", "410 This preview was removed."),
        ("PR-76.PREVIEWS.TEST", "410 This preview was removed."),
        ("pr-76.previews.test.", "410 This preview was removed."),
        ("pr-76.previews.test:8080", "410 This preview was removed."),
        ("pr-76-api.previews.test", "404 No preview at this address."),
        ("pr-999999.previews.test", "404 No preview at this address."),
        ("previews.test", "404 No preview at this address."),
        ("../gone/pr-76.previews.test", "400"),
        ("..previews.test", "400"),
        ("a/b.previews.test", "400"),
        ("elsewhere.test", "200 other site"),
    ],
)
def test_preview_domain_never_reaches_another_site(host, other_site, host_header, expected):
    answer = get_over_http(host, host_header)

    assert answer.startswith(expected), answer


def test_killed_runner_then_redeploy(host):
    number = 72
    first = host.open(number, "Before the kill")
    slow = host.push(number, "Slow build", {"BUILD_DELAY": "30"})
    ident = host.deliver("synchronize", number, slow)
    wait_until(lambda: build_running(host, number), timeout=120)

    host.run("kill", "-KILL", str(runner_pid(host, ident)))

    assert host.wait(ident) == "canceled"
    assert deploying(host) == []
    preview = host.previews()[number]
    assert (preview["status"], preview["sha"]) == ("failed", first)
    assert "marked canceled" in host.stdout(ident)
    assert served(host, number) == ""
    assert status_of(host, url(number), token_of=number) == 200

    fixed = host.push(number, "After the kill", {"BUILD_DELAY": None})
    assert host.wait(host.deliver("synchronize", number, fixed)) == "successful"
    assert served(host, number) == fixed
    assert fixed in host.get(url(number), headers={"X-Preview-Token": host.token(number)}).text
    assert findings(host) == {}


def test_killed_bridge_and_run_unit(host):
    number = 73
    sha = host.push(number, "Killed with the bridge", {"BUILD_DELAY": "20"})
    status, answer = demo.post_delivery(
        host.secret, origin.pull_request_payload("opened", number, sha, "kill")
    )
    assert status == 202, answer
    wait_until(lambda: run_started(host, answer["run"]), timeout=60)
    wait_until(lambda: deploying(host) == [number], timeout=60)

    restarts = bridge_restarts(host)
    # The main process only: killing the bridge's whole control group fails in the sandbox
    # with "Input/output error" (systemd 252).
    host.run("systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", "previews-bridge.service")
    host.run("systemctl", "kill", "--signal=SIGKILL", f"previews-run-{answer['run']}.service")
    wait_until(lambda: bridge_restarts(host) > restarts)

    # The unit's ExecStopPost= marks the killed run; the restarted bridge runs it again.
    wait_until(lambda: runs_idle(host), timeout=240)
    assert host.run("cat", str(ARTIFACTS / answer["run"] / "status")) == "canceled"
    assert deploying(host) == []
    assert served(host, number) == sha, describe_runs(host, number)

    newer = host.push(number, "After the bridge came back", {"BUILD_DELAY": None})
    assert host.wait(host.deliver("synchronize", number, newer)) == "successful"
    assert newer in host.get(url(number), headers={"X-Preview-Token": host.token(number)}).text


def test_stale_ref_lock_is_removed(host):
    number = 76
    first = host.open(number, "Before the killed fetch")
    # What git leaves in the store when it is killed while it updates the PR's ref.
    lock = f"{STORE}/refs/pull/{number}/head.lock"
    plant_lock = ["sh", "-c", f"printf '%s\\n' {first} > {lock}"]

    host.run(*plant_lock)
    newer = host.push(number, "After the killed fetch")
    ident = host.deliver("synchronize", number, newer)
    assert host.wait(ident) == "successful", host.stdout(ident)[-3000:]
    assert served(host, number) == newer

    host.run(*plant_lock)
    # Shared by all previews, so removed only once it is too old to belong to a live git.
    host.run("touch", "--date=-2 minutes", f"{STORE}/packed-refs.lock")
    ident = host.deliver("closed", number, newer)
    assert host.wait(ident) == "successful", host.stdout(ident)[-3000:]
    assert host.run("sh", "-c", f"ls {STORE}/refs/pull/{number} 2>/dev/null || true") == ""
    assert host.sandbox.run(["test", "-e", f"{STORE}/packed-refs.lock"]).returncode == 1


def test_unpublished_pull_request_fails_with_git_reason(host):
    number = 77
    sha = "7" * 40
    ident = host.deliver("opened", number, sha)

    assert host.wait(ident) == "failed"
    preview = host.previews()[number]
    assert "couldn't find remote ref refs/pull/77/head" in preview["reason"]


def test_reconcile_marks_a_killed_hand_run(host):
    number = 74
    sha = host.push(number, "Deployed by hand", {"BUILD_DELAY": "20"})
    # A run of ansible-playbook by hand has no unit, so only its process shows whether it
    # still runs.
    playbook = ["playbooks/deploy.yml", "-e", f"preview_pr={number}", "-e", f"preview_sha={sha}"]
    command = host.sandbox.exec_argv(
        [str(demo.VENV_BIN / "ansible-playbook"), *playbook], PROJECT_DIR
    )
    deploy = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: build_running(host, number), timeout=120)
        host.run("pkill", "--signal", "KILL", "--full", f"ansible-playbook {' '.join(playbook)}")
    finally:
        deploy.wait(timeout=30)
    assert deploying(host) == [number]
    [ident] = wait_until(lambda: audit(host)["interrupted_runs"], timeout=30)

    result = cli(host, "reconcile")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"interrupted run {ident}: marked canceled" in result.stdout
    assert deploying(host) == []
    assert host.previews()[number]["status"] == "failed"
    fixed = host.push(number, "Fixed", {"BUILD_DELAY": None})
    assert host.wait(host.deliver("synchronize", number, fixed)) == "successful"
    assert served(host, number) == fixed


def test_registry_entry_without_resources_is_cleaned_up(host):
    number = 75
    host.open(number, "Removed behind the registry's back")
    # A cleanup that the registry never hears of: its callback finds no registry to write.
    removed = host.sandbox.run(
        [
            str(demo.VENV_BIN / "ansible-playbook"),
            "playbooks/cleanup.yml",
            "-e",
            f"preview_pr={number}",
        ],
        cwd=PROJECT_DIR,
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "PREVIEWS_DATA_DIR": "/nonexistent",
        },
        capture_output=True,
    )
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert host.previews()[number]["status"] == "active"
    assert findings(host)[f"demo-pr{number}"]["reason"] == "resources gone"

    result = cli(host, "reconcile")

    assert result.returncode == 0, result.stdout + result.stderr
    assert number not in host.previews()
    assert findings(host) == {}


def test_fifty_cycles_leave_nothing_behind(host):
    # PR numbers no other end-to-end test uses: their histories must stay their own.
    numbers = range(880, 885)
    cycles = 10
    heads: dict[int, str] = {}
    started = time.monotonic()
    for cycle in range(cycles):
        for number in numbers:
            if cycle == 0:
                heads[number] = host.push(number, "Open")
                send(host, "opened", number, heads[number])
            else:
                send(host, "reopened", number, heads[number])
            heads[number] = host.push(number, f"Push {cycle}")
            send(host, "synchronize", number, heads[number])
            send(host, "closed", number, heads[number])
    delivered = time.monotonic() - started

    wait_until(lambda: runs_idle(host), timeout=420, interval=2)

    report = audit(host)
    assert report["findings"] == [], report
    assert report["interrupted_runs"] == []
    previews = host.previews()
    for number in numbers:
        assert number not in previews
        assert leftovers(host, number) == []
        assert host.get(url(number)).status == 410
    runs = len([ident for ident in host.runs() if "_demo-pr8" in ident])
    print(
        f"50 cycles: delivered in {delivered:.0f} s, {runs} runs, "
        f"idle after {time.monotonic() - started:.0f} s"
    )


def send(host, action: str, number: int, sha: str) -> None:
    status, answer = demo.post_delivery(
        host.secret, origin.pull_request_payload(action, number, sha, f"cycle-{number}")
    )
    assert status == 202, answer
