"""Stale cleanup by the daily timer, pins, and capacity admission, on the sandbox host.

Days cannot pass in a test, so the tests age the registry instead. They move the `time`
facts that real runs recorded in their job events back by some days. Then they delete the
caches, so that the registry folds the artifacts again.
"""

import json

import pytest

from bridge import demo

pytestmark = pytest.mark.sandbox

PREVIEWS = str(demo.VENV_BIN / "previews")
PYTHON = str(demo.VENV_BIN / "python")
SETTINGS_FILE = "/etc/pr-previews/previews.env"
TIMER = "previews-cleanup-stale"

# Run inside the sandbox: moves the recorded times of one run back by some days.
AGE_RUN = """
import json, sys
from datetime import datetime, timedelta
from pathlib import Path

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
runner = Path("/var/lib/pr-previews/runner")
ident, days = sys.argv[1], float(sys.argv[2])
for path in (runner / "artifacts" / ident / "job_events").glob("*.json"):
    text = path.read_text()
    data = json.loads(text).get("event_data", {})
    stats = (data.get("artifact_data") or {}) or ((data.get("res") or {}).get("ansible_stats") or {}).get("data", {})
    time = (stats.get("preview") or {}).get("time")
    if time:
        aged = datetime.strptime(time, FORMAT) - timedelta(days=days)
        path.write_text(text.replace(time, aged.strftime(FORMAT)))
for name in ("index.json", "fold.json"):
    (runner / name).unlink(missing_ok=True)
"""


def cli(host, *args: str):
    return host.sandbox.run([PREVIEWS, *args], capture_output=True)


def runs_of(host, number: int) -> list[dict]:
    return json.loads(cli(host, "history", str(number), "--json").stdout or "[]")


def age(host, ident: str, days: float) -> None:
    """Make the run look as if it had happened the given number of days earlier."""
    host.run(PYTHON, "-c", AGE_RUN, ident, str(days))


def age_preview(host, number: int, days: float) -> None:
    for run in runs_of(host, number):
        age(host, run["ident"], days)


def serves(host, number: int) -> bool:
    cookie = {"Cookie": f"__Host-preview_token={host.token(number)}"}
    return host.get(f"https://pr-{number}.previews.test:8443/", headers=cookie).status == 200


def remains_of(host, number: int) -> list[str]:
    """Return what the host still has of preview N: directory, vhost, user, units."""
    found = host.run(
        "sh",
        "-c",
        f"ls -d /srv/previews/demo-pr{number} /etc/nginx/previews.d/demo-pr{number}.conf "
        f"2>/dev/null; getent passwd demo-pr{number}; "
        f"systemctl list-units --all --plain --no-legend 'demo-pr{number}-*'",
    )
    return found.split()


def previews_on_host(host) -> int:
    names = host.run("ls", "-1", "/srv/previews").split()
    return sum(1 for name in names if "-pr" in name)


@pytest.fixture
def capacity(host):
    """Change capacity settings in the file the run command reads; restore them afterwards."""
    original = host.run("cat", SETTINGS_FILE)

    def write(text: str) -> None:
        host.run("sh", "-c", 'printf "%s" "$1" > "$2"', "sh", text, SETTINGS_FILE)

    def configure(**settings: object) -> None:
        names = {f"PREVIEWS_{name.upper()}" for name in settings}
        kept = [line for line in original.splitlines() if line.split("=", 1)[0] not in names]
        added = [f"PREVIEWS_{name.upper()}={value}" for name, value in settings.items()]
        write("\n".join([*kept, *added]) + "\n")

    yield configure
    write(original)


def test_timer_is_enabled_and_persistent(host):
    assert host.run("systemctl", "is-enabled", f"{TIMER}.timer").strip() == "enabled"
    shown = host.run("systemctl", "show", f"{TIMER}.timer", "-p", "Persistent", "-p", "ActiveState")
    assert "Persistent=yes" in shown.split()
    assert "ActiveState=active" in shown.split()


def test_timer_service_removes_only_the_stale(host):
    # Daily updates over eight days, the last one a failed build: three real runs, aged to
    # eight, four and one days ago. The last successful deploy is four days old.
    daily = 80
    host.open(daily, "Day one")
    synchronized = host.deliver("synchronize", daily, host.push(daily, "Day five"))
    assert host.wait(synchronized) == "successful"
    broken = host.deliver("synchronize", daily, host.push(daily, "Day eight", {"FAIL_BUILD": "x"}))
    assert host.wait(broken) == "failed"
    for run, days in zip(runs_of(host, daily), [8, 4, 1], strict=True):
        age(host, run["ident"], days)

    untouched, pinned = 81, 82
    host.open(untouched, "Left alone")
    host.open(pinned, "Kept on purpose")
    age_preview(host, untouched, 8)
    age_preview(host, pinned, 30)
    assert cli(host, "pin", str(pinned)).returncode == 0

    started = host.sandbox.run(["systemctl", "start", f"{TIMER}.service"], capture_output=True)

    assert started.returncode == 0, host.run("journalctl", "-u", f"{TIMER}.service")
    previews = host.previews()
    assert untouched not in previews
    assert not remains_of(host, untouched)
    assert previews[daily]["status"] == "failed"
    assert serves(host, daily)
    assert previews[pinned]["pinned"] is True
    assert serves(host, pinned)
    [stale] = [run for run in runs_of(host, untouched) if run["action"] == "cleanup-stale"]
    assert stale["status"] == "successful"
    assert f"run {stale['ident']}: successful" in host.run(
        "journalctl", "-u", f"{TIMER}.service", "--no-pager", "--output=cat"
    )


def test_one_failed_removal_leaves_the_others_going(host):
    stuck, other = 83, 84
    for number in (stuck, other):
        host.open(number, "Soon stale")
        age_preview(host, number, 10)
    # A mount point in the preview's directory makes removing the directory fail.
    busy = f"/srv/previews/demo-pr{stuck}/busy"
    host.run("mkdir", busy)
    host.run("mount", "-t", "tmpfs", "tmpfs", busy)
    try:
        result = cli(host, "cleanup-stale", "--max-age-days", "7")
    finally:
        host.run("umount", busy)

    assert result.returncode == 1, result.stdout + result.stderr
    previews = host.previews()
    assert other not in previews
    assert not remains_of(host, other)
    assert stuck in previews
    [stale] = [run for run in runs_of(host, stuck) if run["action"] == "cleanup-stale"]
    log = host.stdout(stale["ident"])
    assert f"Could not remove demo-pr{stuck}" in log
    assert "rescued=1" in log

    # The next cleanup of the preview finishes the job.
    assert cli(host, "cleanup", str(stuck)).returncode == 0
    assert not remains_of(host, stuck)


def test_reject_policy_keeps_the_host_as_it_is(host, capacity):
    first, second = 85, 86
    capacity(max_previews=previews_on_host(host) + 1, capacity_policy="reject")
    host.open(first, "Fits")
    ident = host.deliver("opened", second, host.push(second, "Does not fit"))

    assert host.wait(ident) == "failed"

    reason = host.previews()[second]["reason"]
    assert reason.startswith("The host has no capacity for a new preview (capacity policy reject)")
    assert "the maximum is" in reason
    assert reason in host.stdout(ident)
    assert f"failed: {reason}" in cli(host, "list").stdout
    assert reason in cli(host, "show", str(second)).stdout
    assert f"/srv/previews/demo-pr{second}" not in remains_of(host, second)
    assert serves(host, first)


def test_evict_policy_removes_the_least_recently_used(host, capacity):
    oldest, newer, incoming = 87, 88, 89
    host.open(oldest, "Oldest")
    host.open(newer, "Newer")
    # Older than every other unpinned preview on the host.
    age_preview(host, oldest, 60)
    capacity(max_previews=previews_on_host(host), capacity_policy="evict")

    host.open(incoming, "Needs room")

    assert oldest not in host.previews()
    assert not remains_of(host, oldest)
    assert [run["action"] for run in runs_of(host, oldest)][-1] == "cleanup"
    assert serves(host, newer)
    assert serves(host, incoming)
