"""Bridge operations on the sandbox host: durable intake, coalescing, trust, registry, API."""

import json
import urllib.request
from pathlib import Path

import pytest

from bridge import demo, origin
from tests.sandbox.conftest import ARTIFACTS, wait_until

pytestmark = pytest.mark.sandbox

PREVIEWS = str(demo.VENV_BIN / "previews")
PROJECT_DIR = Path(__file__).parents[2]


def send(host, payload):
    """Deliver a signed pull_request event; return the bridge's status and answer."""
    return demo.post_delivery(host.secret, payload)


def cli(host, *args: str):
    return host.sandbox.run([PREVIEWS, *args], capture_output=True)


def run_started(host, ident: str) -> bool:
    return host.sandbox.run(["test", "-d", str(ARTIFACTS / ident)]).returncode == 0


def deploy_runs(host, number: int) -> list[dict]:
    history = cli(host, "history", str(number), "--json")
    return [run for run in json.loads(history.stdout or "[]") if run["action"] == "deploy"]


def served(host, number: int) -> str:
    preview = host.previews().get(number)
    return str(preview["sha"]) if preview and preview["status"] == "active" else ""


def leftovers(host, number: int) -> list[str]:
    """Everything of preview N that a cleanup must remove, as found on the host."""
    checks = {
        "units": [
            "sh",
            "-c",
            f"systemctl list-units --all --plain --no-legend 'demo-pr{number}-*'",
        ],
        "unit files": ["sh", "-c", f"ls /etc/systemd/system | grep '^demo-pr{number}-' || true"],
        "release directory": [
            "sh",
            "-c",
            f"ls -d /srv/previews/demo-pr{number} 2>/dev/null || true",
        ],
        "vhost": ["sh", "-c", f"ls /etc/nginx/previews.d/demo-pr{number}.conf 2>/dev/null || true"],
        "user": ["sh", "-c", f"getent passwd demo-pr{number} || true"],
        "token": [
            "sh",
            "-c",
            f"ls /var/lib/pr-previews/tokens/demo-pr{number} 2>/dev/null || true",
        ],
    }
    found = []
    for name, command in checks.items():
        output = host.run(*command).strip()
        if output:
            found.append(f"{name}: {output}")
    return found


def bridge_answers() -> bool:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            "http://127.0.0.1:8700/healthz", timeout=5
        ) as response:
            return response.status == 200
    except OSError:
        return False


def bridge_idle(host) -> bool:
    """Whether the bridge has no accepted request left to run."""
    state = "/var/lib/pr-previews/bridge"
    return not host.run("find", f"{state}/pending", f"{state}/started", "-name", "*.json").strip()


def test_ten_pushes_during_a_deploy_cause_at_most_two_runs(host):
    number = 40
    first = host.push(number, "Slow first build", {"BUILD_DELAY": "12"})
    status, answer = send(host, origin.pull_request_payload("opened", number, first, "burst"))
    assert status == 202, answer
    wait_until(lambda: run_started(host, answer["run"]))

    shas = []
    for n in range(10):
        sha = host.push(number, f"Push {n}", {"BUILD_DELAY": None, "NOTE": str(n)})
        status, _ = send(host, origin.pull_request_payload("synchronize", number, sha, "burst"))
        assert status == 202
        shas.append(sha)
    wait_until(lambda: served(host, number) == shas[-1] and bridge_idle(host), timeout=240)

    runs = deploy_runs(host, number)
    assert len(runs) <= 2, runs
    assert runs[-1]["sha"] == shas[-1]


def test_closed_during_a_deploy_leaves_nothing(host):
    number = 41
    sha = host.push(number, "Slow build", {"BUILD_DELAY": "10"})
    status, answer = send(host, origin.pull_request_payload("opened", number, sha, "closing"))
    assert status == 202, answer
    wait_until(lambda: run_started(host, answer["run"]))

    status, closed = send(host, origin.pull_request_payload("closed", number, sha, "closing"))
    assert status == 202, closed
    assert host.wait(closed["run"]) == "successful"

    assert number not in host.previews()
    assert leftovers(host, number) == []


def test_bridge_killed_with_accepted_requests_loses_none(host):
    numbers = (42, 43, 44, 45)
    shas = {number: host.push(number, "Queued", {"BUILD_DELAY": "4"}) for number in numbers}
    for number in numbers:
        status, answer = send(
            host, origin.pull_request_payload("opened", number, shas[number], "q")
        )
        assert status == 202, answer

    # The main process only: killing every process of the unit's control group fails in the
    # sandbox ("Input/output error"), and the runs live in units of their own anyway.
    host.sandbox.run(
        ["systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "previews-bridge.service"]
    )
    wait_until(lambda: bridge_answers(), timeout=60)

    # Restart=on-failure brings the bridge back, and it resumes what it had accepted.
    wait_until(lambda: all(served(host, number) == shas[number] for number in numbers), timeout=300)
    restarts = host.run("systemctl", "show", "--property=NRestarts", "previews-bridge.service")
    assert restarts.strip() != "NRestarts=0"


def test_fork_is_blocked_until_one_sha_is_approved(host):
    number = 46
    sha = host.push(number, "From a fork")
    status, answer = send(
        host, origin.pull_request_payload("opened", number, sha, "patch-1", head="fork")
    )
    assert (status, answer["status"]) == (200, "blocked")

    listed = host.previews()[number]
    assert listed["status"] == "blocked"
    assert listed["blocked_sha"] == sha
    assert "another repository" in listed["blocked"]
    assert "blocked" in cli(host, "list").stdout

    wrong = cli(host, "approve", str(number), "--sha", "f" * 40)
    assert wrong.returncode == 1
    assert f"is for SHA {sha}" in wrong.stderr

    approved = cli(host, "approve", str(number), "--sha", sha)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert served(host, number) == sha
    assert host.previews()[number]["blocked"] == ""

    newer = host.push(number, "A later push")
    status, answer = send(
        host, origin.pull_request_payload("synchronize", number, newer, "patch-1", head="fork")
    )
    assert answer["status"] == "blocked"
    preview = host.previews()[number]
    assert (preview["sha"], preview["blocked_sha"]) == (sha, newer)

    status, answer = send(
        host,
        origin.pull_request_payload(
            "labeled", number, newer, "patch-1", head="fork", label="preview-approved"
        ),
    )
    assert status == 202, answer
    assert host.wait(answer["run"]) == "successful"
    assert served(host, number) == newer


def test_contributor_is_blocked_with_the_reason(host):
    number = 47
    sha = host.push(number, "From a contributor")
    payload = origin.pull_request_payload("opened", number, sha, "c", association="CONTRIBUTOR")

    status, answer = send(host, payload)
    assert status == 200

    assert answer["status"] == "blocked"
    assert "CONTRIBUTOR" in host.previews()[number]["blocked"]
    shown = cli(host, "show", str(number))
    assert "CONTRIBUTOR" in shown.stdout
    assert leftovers(host, number) == []


def test_replayed_delivery_is_ignored(host):
    number = 48
    sha = host.push(number, "Replayed")
    body, headers = origin.signed_delivery(
        host.secret, origin.pull_request_payload("opened", number, sha, "r")
    )
    status, answer = demo.post(body, headers)
    assert status == 202
    host.wait(answer["run"])

    status, again = demo.post(body, headers)

    assert (status, again["status"]) == (200, "ignored")
    assert len(deploy_runs(host, number)) == 1


def test_hand_run_of_ansible_playbook_is_listed(host):
    number = 49
    sha = host.push(number, "By hand")

    rc, _, output = host.playbook(
        "playbooks/deploy.yml", "-e", f"preview_pr={number}", "-e", f"preview_sha={sha}"
    )

    assert rc == 0, output
    assert "pr-previews: recording this run as" in output
    assert served(host, number) == sha
    [run] = deploy_runs(host, number)
    assert run["status"] == "successful"
    logs = cli(host, "logs", str(number))
    assert logs.returncode == 0
    assert "TASK [" in logs.stdout

    rc, _, output = host.playbook("playbooks/cleanup.yml", "-e", f"preview_pr={number}")
    assert rc == 0, output
    assert number not in host.previews()


def test_cli_history_logs_and_exit_codes(host):
    number = 50
    sha = host.open(number, "History")

    history = cli(host, "history", str(number))
    logs = cli(host, "logs", str(number), "--follow")
    missing = cli(host, "show", "9999")

    assert history.returncode == 0
    assert sha[:12] in history.stdout
    assert logs.returncode == 0
    assert "PLAY RECAP" in logs.stdout
    assert missing.returncode == 1
    assert "no preview of PR 9999" in missing.stderr
    assert cli(host, "history", "9999").returncode == 1


def test_operator_api_lists_previews(host):
    number = 51
    host.open(number, "Through the API")
    token = host.run(
        "sh", "-c", "sed -n 's/^PREVIEWS_API_TOKEN=//p' /etc/pr-previews/api.env"
    ).strip()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(path: str, auth: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:8700{path}", headers={"Authorization": f"Bearer {auth}"}
        )
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    status, body = get(f"/api/previews/{number}", token)
    assert status == 200
    preview = json.loads(body)
    assert preview["status"] == "active"
    status, body = get(f"/api/runs/{preview['last_run']}/log", token)
    assert status == 200
    assert b"PLAY RECAP" in body
    assert get("/api/previews", "wrong")[0] == 401
