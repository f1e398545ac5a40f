"""Previews survive a reboot of the host: systemd starts their units again from
previews.target, and nginx and the bridge come back, with no new deploy."""

import pytest

from tests.sandbox.conftest import wait_until

pytestmark = pytest.mark.sandbox


def page_status(host, number: int) -> int:
    cookie = {"Cookie": f"__Host-preview_token={host.token(number)}"}
    try:
        return host.get(f"https://pr-{number}.previews.test:8443/", headers=cookie).status
    except OSError:
        return 0


def test_previews_answer_again_after_a_reboot(host):
    shas = {number: host.open(number, f"Before the reboot {number}") for number in (70, 71)}
    runs_before = host.runs()
    pid_before = host.sandbox.init_pid()

    host.sandbox.reboot()

    assert host.sandbox.init_pid() != pid_before
    for number, sha in shas.items():
        wait_until(lambda number=number: page_status(host, number) == 200, timeout=60)
        cookie = {"Cookie": f"__Host-preview_token={host.token(number)}"}
        page = host.get(f"https://pr-{number}.previews.test:8443/", headers=cookie)
        assert sha in page.text
    assert host.runs() == runs_before
    assert {70, 71} <= set(host.previews())
    assert host.run("systemctl", "is-active", "previews-bridge.service").strip() == "active"
