"""Runs killed between a change and the step that applies it: the next run applies it.

A killed run may have written a vhost, unit files or the current link and died before the
nginx reload, the restart or the return to the previous release. The next run finds the
files as it wants them, so only knowing that a run was interrupted makes it act.
"""

import pytest

from tests.sandbox.conftest import ARTIFACTS
from tests.sandbox.test_reconcile import deploying, status_of, url
from tests.sandbox.test_releases import current, serves

pytestmark = pytest.mark.sandbox

# Waits for the task's line in the run's output, then kills the run's unit.
KILL_AT_TASK = """
stdout="$1"; task="$2"; unit="$3"; delay="$4"
for _ in $(seq 6000); do
    if grep -qF -- "$task" "$stdout" 2>/dev/null; then
        sleep "$delay"
        systemctl kill --signal=SIGKILL "$unit"
        exit 0
    fi
    sleep 0.02
done
echo "timed out waiting for $task" >&2
exit 3
"""


def kill_at_task(host, ident: str, task: str, delay: float = 0) -> None:
    """Kill the run when its output reaches the task, and wait until it is marked canceled."""
    stdout = str(ARTIFACTS / ident / "stdout")
    unit = f"previews-run-{ident}.service"
    host.run("sh", "-c", KILL_AT_TASK, "sh", stdout, f"TASK [{task}", unit, str(delay))

    assert host.wait(ident) == "canceled"
    assert deploying(host) == []


def answers(host, number: int, sha: str) -> bool:
    page = host.get(url(number), headers={"X-Preview-Token": host.token(number)})
    return page.status == 200 and sha in page.text


def test_first_deploy_killed_before_the_nginx_reload(host):
    number = 78
    first = host.push(number, "Killed before the reload")
    ident = host.deliver("opened", number, first)
    kill_at_task(host, ident, "preview_nginx : Test the nginx configuration")

    newer = host.push(number, "After the killed reload")
    ident = host.deliver("synchronize", number, newer)

    assert host.wait(ident) == "successful", host.stdout(ident)[-3000:]
    assert answers(host, number, newer)


def test_update_killed_after_the_unit_files(host):
    number = 79
    host.open(number, "Before the killed update")
    newer = host.push(number, "Killed after its unit files")
    ident = host.deliver("synchronize", number, newer)
    kill_at_task(host, ident, "preview_systemd : Find the services that systemd gave up on")

    # The same SHA again, as the bridge sends it when it resumes the interrupted request.
    ident = host.deliver("synchronize", number, newer)

    assert host.wait(ident) == "successful", host.stdout(ident)[-3000:]
    assert serves(host, number, newer)
    assert answers(host, number, newer)


def test_crashing_release_killed_in_its_health_check(host):
    number = 95
    good = host.open(number, "Good release")
    crashing = host.push(number, "Crash web", {"CRASH_ON_START": "web"})
    ident = host.deliver("synchronize", number, crashing)
    kill_at_task(host, ident, "preview_systemd : Wait until every service answers", delay=0.2)

    ident = host.deliver("synchronize", number, crashing)

    assert host.wait(ident) == "failed"
    assert f"Release {good}, which served before, serves again." in host.stdout(ident)
    assert current(host, number) == f"releases/{good}"
    assert answers(host, number, good)


def test_cleanup_killed_before_the_nginx_reload(host):
    number = 96
    sha = host.open(number, "Closed twice")
    ident = host.deliver("closed", number, sha)
    kill_at_task(host, ident, "preview_nginx : Find vhost backups that an interrupted run left")

    ident = host.deliver("closed", number, sha)

    assert host.wait(ident) == "successful", host.stdout(ident)[-3000:]
    assert status_of(host, url(number)) == 410
