"""The demo lifecycle on the sandbox host: provision, open, update and close a pull request.

Everything goes through the real path: signed webhooks to the bridge inside the sandbox,
ansible-runner, the roles, systemd units and nginx over TLS.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bridge import https, origin
from bridge.sandbox import Sandbox
from bridge.settings import PROJECT_DIR

VENV_BIN = PROJECT_DIR / ".venv" / "bin"
BRIDGE_URL = "http://127.0.0.1:8700/webhooks/github"
SECRET_FILE = "/etc/pr-previews/bridge.env"  # noqa: S105 - a path, not a secret
CA_FILE = "/etc/ssl/previews/wildcard.crt"
RUN_TIMEOUT_SECONDS = 300.0


class DemoError(RuntimeError):
    """A failed step of the demo; the message names the step and the cause."""


def sandbox_output(sandbox: Sandbox, command: list[str]) -> str:
    """Run command inside the sandbox and return its stdout, or raise with its stderr."""
    result = sandbox.run(command, capture_output=True)
    if result.returncode != 0:
        raise DemoError(
            f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return str(result.stdout)


def provision(sandbox: Sandbox) -> None:
    """Apply site.yml to the sandbox host, printing Ansible's output."""
    result = sandbox.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/site.yml"], cwd=PROJECT_DIR
    )
    if result.returncode != 0:
        raise DemoError("playbooks/site.yml failed on the sandbox host; see its output above")


def init_origin(sandbox: Sandbox) -> None:
    sandbox_output(sandbox, [str(VENV_BIN / "python"), "-m", "bridge.origin", "init"])


def push(sandbox: Sandbox, number: int, message: str, files: dict[str, str | None]) -> str:
    """Commit files on the PR's branch in the sandbox's origin and return the new head SHA."""
    argv = [
        str(VENV_BIN / "python"),
        "-m",
        "bridge.origin",
        "push",
        str(number),
        "--message",
        message,
    ]
    for path, text in files.items():
        argv += ["--remove", path] if text is None else ["--set", f"{path}={text}"]
    return sandbox_output(sandbox, argv).strip()


def webhook_secret(sandbox: Sandbox) -> bytes:
    for line in sandbox_output(sandbox, ["cat", SECRET_FILE]).splitlines():
        name, _, value = line.partition("=")
        if name == "PREVIEWS_WEBHOOK_SECRET":
            return value.strip().encode()
    raise DemoError(f"{SECRET_FILE} contains no PREVIEWS_WEBHOOK_SECRET")


def tls(sandbox: Sandbox) -> ssl.SSLContext:
    return https.tls_context(sandbox_output(sandbox, ["cat", CA_FILE]))


def post_delivery(secret: bytes, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST a signed pull_request delivery to the bridge; return the status and the JSON body."""
    body, headers = origin.signed_delivery(secret, payload)
    return post(body, headers)


def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST body with headers to the bridge's webhook; return the status and the JSON body."""
    request = urllib.request.Request(BRIDGE_URL, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def deliver(secret: bytes, action: str, number: int, sha: str, ref: str) -> dict[str, Any]:
    """Deliver a pull_request event that the bridge must accept; return its JSON response."""
    status, answer = post_delivery(secret, origin.pull_request_payload(action, number, sha, ref))
    if status != 202:
        raise DemoError(f"the bridge responded {status} to '{action}': {answer}")
    return answer


def previews(sandbox: Sandbox) -> dict[int, dict[str, object]]:
    """Return the sandbox's registry, keyed by PR number."""
    listing = json.loads(sandbox_output(sandbox, [str(VENV_BIN / "previews"), "list", "--json"]))
    return {int(entry["number"]): entry for entry in listing}


def wait_for_run(sandbox: Sandbox, ident: str) -> str:
    """Wait until the run ends and return its status (successful, failed, ...).

    Raises DemoError at once when the bridge reports that the run ended without artifacts,
    for example because sudo refused it, instead of waiting for the timeout.
    """
    folder = Path("/var/lib/pr-previews/runner/artifacts") / ident
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        result = sandbox.run(["cat", str(folder / "status")], capture_output=True)
        if result.returncode == 0 and result.stdout.strip():
            return str(result.stdout.strip())
        if sandbox.run(["test", "-d", str(folder)]).returncode != 0:
            ended = _bridge_log_line(sandbox, f"run {ident} ended with exit status")
            if ended:
                raise DemoError(f"run {ident} ended without artifacts: {ended}")
        time.sleep(1)
    raise DemoError(f"run {ident} did not finish within {RUN_TIMEOUT_SECONDS:.0f} s")


def _bridge_log_line(sandbox: Sandbox, text: str) -> str:
    """Return the bridge's last journal line that contains text, or an empty string."""
    result = sandbox.run(
        ["journalctl", "--unit=previews-bridge", "--no-pager", "--output=cat", f"--grep={text}"],
        capture_output=True,
    )
    lines = result.stdout.strip().splitlines()
    return lines[-1] if result.returncode == 0 and lines else ""


def preview_urls(sandbox: Sandbox, number: int) -> dict[str, str]:
    """Return each service's URL with the access token (printed by `previews urls`)."""
    output = sandbox_output(sandbox, [str(VENV_BIN / "previews"), "urls", str(number)])
    return dict(line.split("\t", 1) for line in output.splitlines() if "\t" in line)


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _deliver_and_wait(sandbox: Sandbox, secret: bytes, action: str, sha: str) -> None:
    answer = deliver(secret, action, 1, sha, "demo-change")
    print(f"bridge answered: {answer}")
    status = wait_for_run(sandbox, str(answer["run"]))
    print(f"run {answer['run']}: {status}")
    if status != "successful":
        log = f"/var/lib/pr-previews/runner/artifacts/{answer['run']}/stdout"
        raise DemoError(f"the {action} run failed; its log is {log} in the sandbox")


def _show_primary(sandbox: Sandbox, context: ssl.SSLContext) -> None:
    urls = preview_urls(sandbox, 1)
    for service, url in urls.items():
        print(f"  {service:6} {url}")
    primary = next(iter(urls.values()))
    first = https.get(primary, context)
    cookie = first.headers.get("Set-Cookie", "").split(";", 1)[0]
    page = https.get(first.headers["Location"], context, headers={"Cookie": cookie})
    revision = page.text.split('id="revision">', 1)[-1].split("<", 1)[0]
    print(
        f"GET {primary.split('?')[0]} with the token: {first.status} -> {page.status}, "
        f"serving {revision}"
    )


def run(keep: bool) -> int:
    """Run the whole lifecycle; stop the sandbox at the end unless keep is set."""
    sandbox = Sandbox()
    _step("Booting the sandbox host")
    print(f"systemd PID {sandbox.up()}")
    try:
        _step("Provisioning it with playbooks/site.yml")
        provision(sandbox)
        secret = webhook_secret(sandbox)
        context = tls(sandbox)

        _step("Publishing pull request 1 in a local origin repository")
        init_origin(sandbox)
        first = push(sandbox, 1, "Say hello", {"apps/web/NOTE": "hello"})
        print(f"refs/pull/1/head is {first}")

        _step("Delivering a signed pull_request 'opened' to the bridge")
        _deliver_and_wait(sandbox, secret, "opened", first)
        _show_primary(sandbox, context)

        _step("Pushing a new commit and delivering 'synchronize'")
        second = push(sandbox, 1, "Say hello again", {"apps/web/NOTE": "hello again"})
        print(f"refs/pull/1/head is {second}")
        _deliver_and_wait(sandbox, secret, "synchronize", second)
        _show_primary(sandbox, context)

        _step("Delivering 'closed'")
        _deliver_and_wait(sandbox, secret, "closed", second)
        removed = https.get("https://pr-1.previews.test:8443/", context)
        print(f"GET https://pr-1.previews.test:8443/ now: {removed.status} {removed.text.strip()}")
        print(f"active previews: {len(previews(sandbox))}")
    except (DemoError, OSError, subprocess.SubprocessError) as error:
        print(f"\ndemo failed: {error}")
        return 1
    finally:
        if keep:
            print("\nThe sandbox host keeps running; stop it with 'previews sandbox down'.")
        else:
            _step("Stopping the sandbox host")
            sandbox.down()
    print("\nDemo finished: opened, updated and closed a preview.")
    return 0
