"""A local origin repository that publishes pull requests, and webhook bodies about them.

The origin is a bare repository that publishes refs/pull/<N>/head the way GitHub does, so
the roles fetch from it exactly as from a forge. The demo and the tests run these helpers
inside the sandbox host, where the origin lives: python -m bridge.origin {init,push}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.settings import PROJECT_DIR

ORIGIN = Path("/srv/previews-origin/sample-app.git")
SAMPLE_APP = PROJECT_DIR / "examples" / "sample-app"
SAMPLE_IGNORED = shutil.ignore_patterns("node_modules", "dist", "data")
REPOSITORY = "example/sample-app"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Preview Demo",
    "GIT_AUTHOR_EMAIL": "demo@previews.test",
    "GIT_COMMITTER_NAME": "Preview Demo",
    "GIT_COMMITTER_EMAIL": "demo@previews.test",
}


def _git(work_tree: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    result = subprocess.run(
        ["git", "-C", str(work_tree), *args], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def init_origin(origin: Path = ORIGIN, source: Path = SAMPLE_APP) -> None:
    """Create the bare origin with the sample app on its main branch; replace an old one."""
    work = origin.with_suffix(".work")
    for path in (origin, work):
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "init", "--bare", "--quiet", "-b", "main", str(origin)], check=True)
    shutil.copytree(source, work, ignore=SAMPLE_IGNORED)
    _git(work, "init", "--quiet", "-b", "main")
    _git(work, "add", "--all")
    _git(work, "commit", "--quiet", "-m", "Add the sample app")
    _git(work, "remote", "add", "origin", str(origin))
    _git(work, "push", "--quiet", "origin", "main")


def push_pull_request(
    number: int,
    files: dict[str, str | None],
    message: str,
    origin: Path = ORIGIN,
) -> str:
    """Commit files (None removes one) on the PR's branch and publish refs/pull/<N>/head.

    Returns the new head SHA.
    """
    work = origin.with_suffix(".work")
    branch = f"pr-{number}"
    existing = _git(work, "branch", "--list", branch)
    _git(work, "checkout", "--quiet", *([branch] if existing else ["-b", branch, "main"]))
    for name, text in files.items():
        path = work / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    _git(work, "add", "--all")
    _git(work, "commit", "--quiet", "--allow-empty", "-m", message)
    sha = _git(work, "rev-parse", "HEAD")
    _git(work, "push", "--quiet", "--force", "origin", f"HEAD:refs/pull/{number}/head")
    _git(work, "checkout", "--quiet", "main")
    return sha


def pull_request_payload(
    action: str,
    number: int,
    sha: str,
    ref: str,
    login: str = "octocat",
    title: str = "",
    association: str = "MEMBER",
    head: str = "same",
    label: str | None = None,
) -> dict[str, Any]:
    """Return a pull_request webhook body with the fields and nesting GitHub sends.

    head is "same" for a branch of the base repository, "fork" for a fork's and "deleted"
    for a fork that no longer exists. With label, the body is a "labeled" event sent by
    the maintainer "octo-maintainer".
    """
    owner, name = REPOSITORY.split("/")
    repository = {
        "id": 1296269,
        "name": name,
        "full_name": REPOSITORY,
        "private": False,
        "owner": {"login": owner, "id": 1, "type": "Organization"},
        "fork": False,
        "clone_url": f"https://github.com/{REPOSITORY}.git",
        "default_branch": "main",
    }
    user = {"login": login, "id": 583231, "type": "User"}
    head_repository: dict[str, Any] | None = repository
    if head == "fork":
        head_repository = {**repository, "id": 7, "full_name": f"{login}/{name}", "fork": True}
    elif head == "deleted":
        head_repository = None
    payload = {
        "action": action,
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{REPOSITORY}/pulls/{number}",
            "id": 1000 + number,
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "title": title or f"Demo change {number}",
            "user": user,
            "author_association": association,
            "merged": False,
            "head": {
                "label": f"{owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": user,
                "repo": head_repository,
            },
            "base": {
                "label": f"{owner}:main",
                "ref": "main",
                "sha": "0" * 40,
                "user": repository["owner"],
                "repo": repository,
            },
        },
        "repository": repository,
        "sender": user,
    }
    if label is not None:
        payload["label"] = {"id": 1, "name": label, "color": "0e8a16"}
        payload["sender"] = {"login": "octo-maintainer", "id": 2, "type": "User"}
    return payload


def signed_delivery(
    secret: bytes, payload: dict[str, Any], event: str = "pull_request"
) -> tuple[bytes, dict[str, str]]:
    """Return the body and headers of a delivery signed like GitHub's."""
    from bridge.github import sign

    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/demo",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body),
    }
    return body, headers


def _origin_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.origin")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the origin with the sample app")
    push = commands.add_parser("push", help="commit on a PR branch and publish its head")
    push.add_argument("number", type=int)
    push.add_argument("--message", default="Update the demo")
    push.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=TEXT",
        help="write TEXT to PATH in the commit",
    )
    push.add_argument(
        "--remove", action="append", default=[], metavar="PATH", help="remove PATH in the commit"
    )
    args = parser.parse_args(argv)
    if args.command == "init":
        init_origin()
        return 0
    files: dict[str, str | None] = {path: None for path in args.remove}
    for item in args.set:
        path, _, text = item.partition("=")
        files[path] = text
    print(push_pull_request(args.number, files, args.message))
    return 0


if __name__ == "__main__":
    sys.exit(_origin_command(sys.argv[1:]))
