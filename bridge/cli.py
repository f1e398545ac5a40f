"""The `previews` command: sandbox host, bridge server, runs and registry."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from urllib.parse import quote

from bridge import registry
from bridge.models import PreviewRequest
from bridge.run_command import (
    in_run_unit,
    launch,
    parse_run_arguments,
    preview_lock,
    run_unit_argv,
    share_artifacts,
)
from bridge.runner import new_ident, run_playbook
from bridge.sandbox import Sandbox, SandboxError
from bridge.settings import Settings

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args))
    except (SandboxError, ValueError, RuntimeError) as error:
        print(f"previews: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="previews", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    sandbox = commands.add_parser("sandbox", help="the embedded sandbox host")
    sandbox_commands = sandbox.add_subparsers(required=True, metavar="ACTION")
    sandbox_commands.add_parser("up", help="boot the sandbox host").set_defaults(
        handler=_sandbox_up
    )
    sandbox_commands.add_parser("down", help="stop it and remove all its state").set_defaults(
        handler=_sandbox_down
    )
    sandbox_commands.add_parser("status", help="exit 0 if it runs, 3 if not").set_defaults(
        handler=_sandbox_status
    )
    run_in = sandbox_commands.add_parser("exec", help="run a command inside it")
    run_in.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")
    run_in.set_defaults(handler=_sandbox_exec)

    serve = commands.add_parser("serve", help="run the webhook bridge")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8700, help="listen port (default: %(default)s)")
    serve.set_defaults(handler=_serve)

    deploy = commands.add_parser("deploy", help="deploy or update a preview now")
    deploy.add_argument("number", type=int, help="pull-request number")
    deploy.add_argument("--sha", required=True, help="head commit SHA to deploy")
    deploy.add_argument("--ref", default="", help="head branch name, recorded in the registry")
    deploy.set_defaults(handler=_deploy)

    cleanup = commands.add_parser("cleanup", help="remove a preview now")
    cleanup.add_argument("number", type=int, help="pull-request number")
    cleanup.set_defaults(handler=_cleanup)

    run = commands.add_parser(
        "run",
        help="start one run as root (what the bridge's sudo rule allows)",
        description="Arguments: ACTION NUMBER SHA|- IDENT REF AUTHOR REPOSITORY, the last "
        "three base64url-encoded or '-'. The bridge builds them; operators use deploy and "
        "cleanup.",
    )
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="the seven run arguments")
    run.set_defaults(handler=_run)

    listing = commands.add_parser("list", help="list active previews")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    demo = commands.add_parser("demo", help="run the whole lifecycle on the sandbox host")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox host running")
    demo.set_defaults(handler=_demo)

    urls = commands.add_parser("urls", help="print a preview's URLs with its access token")
    urls.add_argument("number", type=int, help="pull-request number")
    urls.set_defaults(handler=_urls)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from bridge import demo

    return demo.run(keep=args.keep)


def _sandbox_up(args: argparse.Namespace) -> int:
    pid = Sandbox().up()
    print(f"sandbox host is up (systemd PID {pid})")
    return 0


def _sandbox_down(args: argparse.Namespace) -> int:
    Sandbox().down()
    print("sandbox host is down")
    return 0


def _sandbox_status(args: argparse.Namespace) -> int:
    pid = Sandbox().init_pid()
    if pid is None:
        print("sandbox host is not running")
        return EXIT_NOT_RUNNING
    print(f"sandbox host is running (systemd PID {pid})")
    return 0


def _sandbox_exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("previews: sandbox exec needs a command, as in: sandbox exec -- CMD", file=sys.stderr)
        return EXIT_USAGE
    return Sandbox().run(command).returncode


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import create_app

    app = create_app(Settings())
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    request = PreviewRequest(action="deploy", number=args.number, sha=args.sha, ref=args.ref)
    return _run_now(request)


def _cleanup(args: argparse.Namespace) -> int:
    return _run_now(PreviewRequest(action="cleanup", number=args.number))


def _run_now(request: PreviewRequest) -> int:
    settings = Settings()
    ident = new_ident(settings, request)
    status = launch(settings, request, ident)
    print(f"run {ident}: {'successful' if status == 0 else 'failed'}")
    print(f"log: {settings.runner_dir / 'artifacts' / ident / 'stdout'}")
    return 0 if status == 0 else EXIT_FAILURE


def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    arguments = list(args.arguments)
    request, ident = parse_run_arguments(settings, arguments)
    if os.geteuid() != 0:
        print(
            "previews: run changes units, vhosts and release directories, so it must run as "
            "root; the bridge starts it through its sudo rule",
            file=sys.stderr,
        )
        return EXIT_FAILURE

    if not in_run_unit(ident):
        unit = run_unit_argv(settings, ["run", *arguments], ident)
        return subprocess.run(unit, stdin=subprocess.DEVNULL, check=False).returncode

    # One run per preview at a time, started by the bridge, by root or by both.
    with preview_lock(settings, request.number):
        status = run_playbook(settings, request, ident)
    share_artifacts(settings, ident)
    return 0 if status == "successful" else EXIT_FAILURE


def _list(args: argparse.Namespace) -> int:
    previews = registry.list_previews(Settings().runner_dir)
    if args.json:
        print(json.dumps([preview.as_dict() for preview in previews], indent=2))
        return 0
    if not previews:
        print("no active previews")
        return 0
    print(f"{'PR':>7}  {'STATUS':<9}  {'SHA':<12}  {'UPDATED':<20}  {'AUTHOR':<16}  URL")
    for preview in previews:
        url = next(iter(preview.urls.values()), "")
        print(
            f"{preview.number:>7}  {preview.status:<9}  {preview.sha[:12]:<12}  "
            f"{preview.updated:<20}  {preview.author[:16]:<16}  {url}"
        )
    return 0


def _urls(args: argparse.Namespace) -> int:
    settings = Settings()
    preview_id = settings.preview_id(args.number)
    previews = registry.fold(registry.read_runs(settings.runner_dir))
    preview = previews.get(preview_id)
    if preview is None or not preview.urls:
        print(f"previews: no active preview {preview_id}", file=sys.stderr)
        return EXIT_FAILURE
    token_file = settings.data_dir / "tokens" / preview_id
    try:
        token = token_file.read_text().strip()
    except PermissionError:
        print(f"previews: reading {token_file} needs root", file=sys.stderr)
        return EXIT_FAILURE
    for service, url in preview.urls.items():
        print(f"{service}\t{url}?token={quote(token)}")
    return 0
