"""Least privilege on the sandbox host: the sudo rule, hostile input, isolation of previews."""

import json
import re

import pytest

from bridge import demo, origin
from tests.sandbox.conftest import wait_until

pytestmark = pytest.mark.sandbox

EXECUTABLE = str(demo.VENV_BIN / "previews")
BRIDGE_USER = "previews-bridge"
SHA = "0123456789abcdef0123456789abcdef01234567"
IDENT = "20260101T000000000000Z_demo-pr5_deploy_a1b2c3"
VALID = ["run", "deploy", "5", SHA, IDENT, "-", "-", "-"]
ROLLBACK_IDENT = IDENT.replace("deploy", "rollback")
CANARY = "/tmp/pwned"
TOUCH = "touch${IFS}/tmp/pwned"


def as_bridge(host, *argv: str):
    return host.sandbox.run(["runuser", "-u", BRIDGE_USER, "--", *argv], capture_output=True)


def test_bridge_runs_unprivileged(host):
    pid = host.run("systemctl", "show", "--property=MainPID", "--value", "previews-bridge").strip()

    user = host.run("ps", "-o", "user=", "-p", pid).strip()

    assert user == BRIDGE_USER


def test_sudo_rule_allows_run_command(host):
    result = host.sandbox.run(
        ["sudo", "-l", "-U", BRIDGE_USER, EXECUTABLE, *VALID], capture_output=True
    )

    assert result.returncode == 0, result.stderr


def test_sudo_rule_file(host):
    listing = host.run("stat", "-c", "%a %U %G", "/etc/sudoers.d/pr-previews-demo").split()

    assert listing == ["440", "root", "root"]
    assert host.sandbox.run(["visudo", "-cf", "/etc/sudoers.d/pr-previews-demo"]).returncode == 0


ESCAPES = {
    "no-arguments": [EXECUTABLE],
    "missing-argument": [EXECUTABLE, *VALID[:-1]],
    "extra-argument": [EXECUTABLE, *VALID, "-"],
    "space-inside-argument": [EXECUTABLE, "run", "deploy 5", *VALID[3:]],
    "help-option": [EXECUTABLE, "--help"],
    "option-injection": [EXECUTABLE, "run", "--help", *VALID[2:]],
    "other-subcommand": [EXECUTABLE, "sandbox", "exec", "--", "id"],
    "other-subcommand-deploy": [EXECUTABLE, "deploy", "5", "--sha", SHA],
    "rollback": [EXECUTABLE, "run", "rollback", *VALID[2:3], "-", ROLLBACK_IDENT, *VALID[5:]],
    "other-subcommand-rollback": [EXECUTABLE, "rollback", "5"],
    "path-in-ident": [EXECUTABLE, *VALID[:4], "../../../etc/shadow", *VALID[5:]],
    "dot-dot-ref": [EXECUTABLE, *VALID[:5], "..", *VALID[6:]],
    "leading-zero": [EXECUTABLE, "run", "deploy", "05", *VALID[3:]],
    "negative-number": [EXECUTABLE, "run", "deploy", "-5", *VALID[3:]],
    "zero": [EXECUTABLE, "run", "deploy", "0", *VALID[3:]],
    "uppercase-sha": [EXECUTABLE, "run", "deploy", "5", SHA.upper(), *VALID[4:]],
    "shell-in-number": [EXECUTABLE, "run", "deploy", "5;id", *VALID[3:]],
    "shell-in-sha": [EXECUTABLE, "run", "deploy", "5", "$(id)", *VALID[4:]],
    "backticks-in-ref": [EXECUTABLE, *VALID[:5], "`id`", *VALID[6:]],
    "newline": [EXECUTABLE, "run", "deploy", "5\n", *VALID[3:]],
    "ident-of-other-pr": [EXECUTABLE, "run", "deploy", "6", *VALID[3:]],
    "ident-of-other-project": [EXECUTABLE, *VALID[:4], IDENT.replace("demo", "evil"), *VALID[5:]],
    "undecodable-ref": [EXECUTABLE, *VALID[:5], "-x", *VALID[6:]],
    "shell": ["/bin/sh", "-c", f"touch {CANARY}"],
    "other-command": ["/usr/bin/id"],
    "systemctl": ["/usr/bin/systemctl", "restart", "nginx"],
    "sudoedit": ["sudoedit", "/etc/sudoers"],
}
SUDO_OPTIONS = {
    "preserve-environment": ["-E", EXECUTABLE, *VALID],
    "other-target-user": ["-u", "nobody", EXECUTABLE, *VALID],
    "login-shell": ["-i"],
    "shell-option": ["-s"],
    "set-variable": [EXECUTABLE, *VALID, "PYTHONPATH=/tmp"],
}


@pytest.mark.parametrize("argv", ESCAPES.values(), ids=ESCAPES.keys())
def test_sudo_escape_refused(host, argv):
    before = host.runs()

    result = as_bridge(host, "sudo", "--non-interactive", "--", *argv)

    assert result.returncode != 0, result.stdout
    assert host.runs() == before
    assert host.sandbox.run(["test", "-e", CANARY]).returncode != 0


@pytest.mark.parametrize("argv", SUDO_OPTIONS.values(), ids=SUDO_OPTIONS.keys())
def test_sudo_option_refused(host, argv):
    before = host.runs()

    result = as_bridge(host, "sudo", "--non-interactive", *argv)

    assert result.returncode != 0, result.stdout
    assert host.runs() == before


def test_bridge_cannot_reach_root_files(host):
    attempts = [
        ["ls", "/var/lib/pr-previews/tokens"],
        ["cat", "/etc/pr-previews/bridge.env"],
        ["cat", "/etc/ssl/previews/wildcard.key"],
        ["ls", "/var/lib/pr-previews/requests"],
        ["sh", "-c", "cat /etc/nginx/previews.d/*.conf"],
    ]

    for argv in attempts:
        result = as_bridge(host, *argv)
        assert result.returncode != 0, argv
        assert "Permission denied" in result.stderr, argv


@pytest.fixture(scope="module")
def pair(host):
    """Two previews, PRs 10 and 11, for the isolation tests."""
    return host.open(10, "Open PR 10"), host.open(11, "Open PR 11")


def test_token_opens_no_other_preview(host, pair):
    for own, other in [(10, 11), (11, 10)]:
        cookie = {"Cookie": f"__Host-preview_token={host.token(own)}"}
        assert host.get(f"https://pr-{own}.previews.test:8443/", headers=cookie).status == 200
        assert host.get(f"https://pr-{other}.previews.test:8443/", headers=cookie).status == 403
        assert host.get(f"https://pr-{other}-api.previews.test:8443/", headers=cookie).status == 403
        query = f"https://pr-{other}.previews.test:8443/?token={host.token(own)}"
        assert host.get(query).status == 403


def test_preview_cannot_read_other_preview(host, pair):
    host.get(
        "https://pr-11.previews.test:8443/",
        headers={"Cookie": f"__Host-preview_token={host.token(11)}"},
    )
    assert host.run("cat", "/srv/previews/demo-pr11/data/web/visits").strip() != ""
    forbidden = [
        "/srv/previews/demo-pr11/data/web/visits",
        "/srv/previews/demo-pr11/current/REVISION",
        "/var/lib/pr-previews/tokens/demo-pr11",
        "/etc/nginx/previews.d/demo-pr11.conf",
        "/etc/pr-previews/bridge.env",
        "/etc/ssl/previews/wildcard.key",
        "/var/log/nginx/previews.access.log",
    ]

    for path in forbidden:
        result = host.sandbox.run(
            ["runuser", "-u", "demo-pr10", "--", "cat", path], capture_output=True
        )
        assert result.returncode != 0, path
        assert "Permission denied" in result.stderr, path


def test_service_environment_has_no_secret(host, pair):
    secret = host.secret.decode()
    pid = host.run("systemctl", "show", "--property=MainPID", "--value", "demo-pr10-web").strip()

    environment = host.run("cat", f"/proc/{pid}/environ")

    assert secret not in environment
    assert "PREVIEWS_" not in environment
    assert "PREVIEW_SHA=" in environment


def test_build_environment_has_no_secret(host):
    sha = host.push(12, "Print the build environment", {"PRINT_ENV": ""})

    ident = host.deliver("opened", 12, sha)

    assert host.wait(ident) == "successful"
    log = host.stdout(ident)
    assert "env HOME=/srv/previews/demo-pr12/home/build" in log
    assert host.secret.decode() not in log
    assert "PREVIEWS_" not in log


def test_secrets_not_in_artifacts(host, pair):
    """Run output is readable through the operator API, so no secret may reach it."""
    api_token = host.run("sed", "-n", "s/^PREVIEWS_API_TOKEN=//p", "/etc/pr-previews/api.env")
    secrets = [host.secret.decode(), api_token.strip(), host.token(10), host.token(11)]

    for secret in secrets:
        assert len(secret) >= 16
        result = host.sandbox.run(
            [
                "grep",
                "-rlF",
                secret,
                "/var/lib/pr-previews/runner",
                "/var/lib/pr-previews/requests",
                "/var/lib/pr-previews/bridge",
            ],
            capture_output=True,
        )
        assert result.returncode == 1, result.stdout + result.stderr


def test_bridge_reads_artifacts_but_cannot_write(host, pair):
    ident = sorted(host.runs())[-1]
    folder = f"/var/lib/pr-previews/runner/artifacts/{ident}"

    assert as_bridge(host, "cat", f"{folder}/status").returncode == 0
    assert as_bridge(host, "touch", f"{folder}/forged").returncode != 0
    assert as_bridge(host, "rm", "-f", f"{folder}/status").returncode != 0
    assert host.sandbox.run(["test", "-e", f"{folder}/status"]).returncode == 0


def test_units_exposure_at_most_four(host, pair):
    units = host.run(
        "sh", "-c", "ls /etc/systemd/system | grep -E '^demo-pr[0-9]+-.*\\.service$'"
    ).split()

    assert len(units) >= 6
    for unit in units:
        report = host.run("systemd-analyze", "security", "--no-pager", unit)
        exposure = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", report).group(1))
        assert exposure <= 4.0, f"{unit}: {exposure}"


def test_sudo_rule_rejects_writable_command(host):
    host.run("sh", "-c", "cp /bin/true /tmp/previews-copy && chmod 0775 /tmp/previews-copy")
    before = host.run("cat", "/etc/sudoers.d/pr-previews-demo")

    rc, output = host.ansible_module(
        "ansible.builtin.include_role",
        "name=preview_sudoers",
        "-e",
        "preview_sudoers_command=/tmp/previews-copy",
        "-e",
        '{"preview_sudoers_trusted_paths": []}',
    )

    assert rc != 0
    assert "writable by group or others" in output
    assert host.run("cat", "/etc/sudoers.d/pr-previews-demo") == before


HOSTILE_REFS = [
    f"{{{{lookup('pipe','{TOUCH}')}}}}",
    f"{{%if(lookup('pipe','{TOUCH}'))%}}{{%endif%}}",
    f"$({TOUCH})",
    f"`{TOUCH}`",
    f"a;{TOUCH}",
    f"a|{TOUCH}",
    f"a&&{TOUCH}",
    "'\"$IFS<>",
    "${IFS}${PATH}",
    "<script>alert(1)</script>",
    "%0d%0aSet-Cookie=x",
    "feature/ünïcödé-日本語",
    "emoji-🚀",
    "refs/heads/main",
    "x" * 255,
]
INVALID_REFS = [
    "${jndi:ldap://127.0.0.1/x}",
    "%0d%0aSet-Cookie:x=1",
    f"--upload-pack={TOUCH}",
    "-rf",
    "a b",
    "new\nline",
    "tab\there",
    "a..b",
    "x" * 256,
    "bad:colon",
    "@{-1}",
    ".hidden",
    "end.lock",
    "ctrl\x01char",
    "~tilde",
    "star*",
    "back\\slash",
]
# Logins are at most 45 characters: GitHub's 39, and Gitea's and GitLab's usernames.
INVALID_LOGINS = ["a;b", "$(id)", "{{7*7}}", "x" * 46, "-lead", "new\nline"]
HOSTILE_TITLES = [
    f"{{{{lookup('pipe','{TOUCH}')}}}}",
    f"$({TOUCH})",
    "\n\nline\r\nbreaks",
    "x" * 20000,
]


@pytest.fixture(scope="module")
def hostile_pr(host):
    return host.open(13, "Open PR 13")


@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_hostile_ref_deploys_as_data(host, hostile_pr, ref):
    status, answer = demo.post_delivery(
        host.secret, origin.pull_request_payload("synchronize", 13, hostile_pr, ref)
    )

    assert status == 202, answer
    assert host.wait(answer["run"]) == "successful"
    assert host.previews()[13]["ref"] == ref
    assert host.sandbox.run(["test", "-e", CANARY]).returncode != 0


@pytest.mark.parametrize("ref", INVALID_REFS)
def test_invalid_ref_rejected(host, hostile_pr, ref):
    before = host.runs()

    status, answer = demo.post_delivery(
        host.secret, origin.pull_request_payload("synchronize", 13, hostile_pr, ref)
    )

    assert status == 422
    assert answer["detail"][0]["field"] == "pull_request.head.ref"
    assert host.runs() == before


@pytest.mark.parametrize("login", INVALID_LOGINS)
def test_invalid_login_rejected(host, hostile_pr, login):
    status, answer = demo.post_delivery(
        host.secret, origin.pull_request_payload("synchronize", 13, hostile_pr, "main", login=login)
    )

    assert status == 422
    assert answer["detail"][0]["field"] == "pull_request.user.login"


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_title_is_ignored(host, hostile_pr, title):
    status, answer = demo.post_delivery(
        host.secret, origin.pull_request_payload("synchronize", 13, hostile_pr, "main", title=title)
    )

    assert status == 202, answer
    assert host.wait(answer["run"]) == "successful"
    assert host.sandbox.run(["test", "-e", CANARY]).returncode != 0


OPERATOR_COMMANDS = {
    "status": (["/usr/bin/systemctl", "--no-pager", "status", "demo-pr10-web.service"], 0),
    "restart": (["/usr/bin/systemctl", "--no-pager", "restart", "demo-pr10-api.service"], 0),
    "journal": (["/usr/bin/journalctl", "--no-pager", "-u", "demo-pr10-web.service"], 0),
    "pager": (["/usr/bin/systemctl", "status", "demo-pr10-web.service"], 1),
    "stop": (["/usr/bin/systemctl", "--no-pager", "stop", "demo-pr10-web.service"], 1),
    "other-unit": (["/usr/bin/systemctl", "--no-pager", "restart", "nginx.service"], 1),
    "bridge-unit": (["/usr/bin/systemctl", "--no-pager", "restart", "previews-bridge.service"], 1),
    "journal-follow": (
        ["/usr/bin/journalctl", "--no-pager", "-u", "demo-pr10-web.service", "-f"],
        1,
    ),
    "journal-all": (["/usr/bin/journalctl", "--no-pager"], 1),
    "two-units": (
        ["/usr/bin/systemctl", "--no-pager", "status", "demo-pr10-web.service", "ssh.service"],
        1,
    ),
}


@pytest.mark.parametrize(
    ("argv", "expected"), OPERATOR_COMMANDS.values(), ids=OPERATOR_COMMANDS.keys()
)
def test_operator_rule(host, argv, expected):
    host.run(
        "sh",
        "-c",
        "id previews-op >/dev/null 2>&1 || useradd --system -G previews-operators previews-op",
    )

    result = host.sandbox.run(["sudo", "-l", "-U", "previews-op", *argv], capture_output=True)

    assert result.returncode == expected, result.stdout + result.stderr


# A server that returns 200 to every GET, as a hostile preview's service would.
ROGUE_SERVER = """
import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"rogue\\n")

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_foreign_port_owner_fails_deploy(host, pair):
    number = 15
    host.open(number, "Before its port was taken")
    port = json.loads(host.run("cat", "/var/lib/pr-previews/ports/demo-pr15.json"))["web"]
    # What the units allow; systemd enforces it only on the unified cgroup hierarchy.
    binds = host.run(
        "systemctl", "show", "--property=SocketBindAllow,SocketBindDeny", "demo-pr15-web"
    )
    assert f"SocketBindAllow=tcp{port}\n" in binds
    assert "SocketBindDeny=tcpany" in binds
    # The window a restart leaves: the service is down and PR 11's user takes its port.
    host.run("systemctl", "stop", "demo-pr15-web.service")
    rogue = ["--unit=rogue-listener", "--uid=demo-pr11", "--gid=demo-pr11"]
    host.run("systemd-run", *rogue, "/usr/bin/python3", "-c", ROGUE_SERVER, str(port))
    try:
        wait_until(lambda: f":{port} " in host.run("ss", "--listening", "--tcp", "--numeric"))
        blocked_sha = host.push(number, "While its port is taken")
        ident = host.deliver("synchronize", number, blocked_sha)

        assert host.wait(ident) == "failed"
        message = f"port {port} of demo-pr15-web.service is in use by a process of demo-pr11"
        assert message in host.stdout(ident)
    finally:
        host.run("systemctl", "stop", "rogue-listener.service")

    freed_sha = host.push(number, "After its port was freed")
    ident = host.deliver("synchronize", number, freed_sha)
    assert host.wait(ident) == "successful", host.stdout(ident)[-3000:]
    assert (
        freed_sha
        in host.get(
            f"https://pr-{number}.previews.test:8443/",
            headers={"X-Preview-Token": host.token(number)},
        ).text
    )
