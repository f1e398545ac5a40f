"""The `previews` command: sandbox host, bridge server, runs and registry."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from functools import partial
from urllib.parse import quote

from pydantic import ValidationError

from bridge import capacity, interrupted, logs, pins, registry, stale
from bridge.intake import Intake
from bridge.models import PreviewRequest
from bridge.run_command import (
    MAX_STALE_AGE_DAYS,
    RUN_IDENT,
    STALE_ACTION,
    in_run_unit,
    launch,
    launch_stale,
    parse_run_arguments,
    parse_stale_arguments,
    preview_lock,
    run_unit_argv,
    share_artifacts,
)
from bridge.runner import new_ident, new_stale_ident, run_playbook
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
    except ValidationError as error:
        # An argument such as --sha fails the same checks as a webhook's field.
        for item in error.errors():
            field = ".".join(str(part) for part in item["loc"]) or "request"
            reason = str(item["msg"]).removeprefix("Value error, ")
            print(f"previews: invalid {field}: {reason}", file=sys.stderr)
        return EXIT_USAGE
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
    sandbox_commands.add_parser(
        "reboot", help="shut it down and boot it again, keeping its disk"
    ).set_defaults(handler=_sandbox_reboot)
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

    rollback = commands.add_parser(
        "rollback",
        help="serve a preview's previous good release again (root only)",
        description="Make the good release that served before the current one current "
        "again, restart the preview's services on it and wait for their health checks. "
        "The release rolled back from no longer counts as good.",
    )
    rollback.add_argument("number", type=int, help="pull-request number")
    rollback.set_defaults(handler=_rollback)

    run = commands.add_parser(
        "run",
        help="start one run as root (what the bridge's sudo rule allows)",
        description="Arguments: ACTION NUMBER SHA|- IDENT REF AUTHOR REPOSITORY, the last "
        "three base64url-encoded or '-', or cleanup-stale IDENT MAX_AGE_DAYS NUMBERS. The "
        "bridge and cleanup-stale build them; operators use deploy, cleanup and cleanup-stale.",
    )
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="the run arguments")
    run.set_defaults(handler=_run)

    listing = commands.add_parser("list", help="list previews: active, failed and blocked")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="show one preview")
    show.add_argument("number", type=int, help="pull-request number")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)

    runs = commands.add_parser("history", help="list a preview's runs, oldest first")
    runs.add_argument("number", type=int, help="pull-request number")
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.set_defaults(handler=_history)

    logs = commands.add_parser("logs", help="print the output of a preview's latest run")
    logs.add_argument("number", type=int, help="pull-request number")
    logs.add_argument("--run", help="this run's output instead of the latest")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the run ends"
    )
    logs.set_defaults(handler=_logs)

    approve = commands.add_parser(
        "approve", help="deploy one SHA of a blocked pull request (a fork's, for example)"
    )
    approve.add_argument("number", type=int, help="pull-request number")
    approve.add_argument("--sha", required=True, help="the head SHA you reviewed")
    approve.set_defaults(handler=_approve)

    stale = commands.add_parser(
        "cleanup-stale",
        help="remove the unpinned previews without activity for a number of days, in one run",
    )
    stale.add_argument(
        "--max-age-days",
        type=int,
        default=7,
        help="days since the last run or request of a preview (default: 7)",
    )
    stale.add_argument("--dry-run", action="store_true", help="only print what would go")
    stale.set_defaults(handler=_cleanup_stale)

    for name, handler, text in [
        ("pin", _pin, "keep a preview: the stale cleanup and eviction skip it"),
        ("unpin", _unpin, "let the stale cleanup and eviction remove a preview again"),
    ]:
        command = commands.add_parser(name, help=text)
        command.add_argument("number", type=int, help="pull-request number")
        command.set_defaults(handler=handler)

    audit = commands.add_parser(
        "audit",
        help="list preview resources that the registry does not account for, registry "
        "entries whose resources are gone, and runs that died midway; exit 1 if any",
    )
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(handler=_audit)

    reconcile = commands.add_parser(
        "reconcile",
        help="clean up what audit lists, one cleanup run per preview, and mark dead runs "
        "as canceled",
    )
    reconcile.add_argument("--dry-run", action="store_true", help="only print what would go")
    reconcile.set_defaults(handler=_reconcile)

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


def _sandbox_reboot(args: argparse.Namespace) -> int:
    pid = Sandbox().reboot()
    print(f"sandbox host rebooted (systemd PID {pid})")
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
    # No access log: a query string may carry a token, and the app logs what it decides.
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    request = PreviewRequest(action="deploy", number=args.number, sha=args.sha, ref=args.ref)
    return _run_now(request)


def _cleanup(args: argparse.Namespace) -> int:
    return _run_now(PreviewRequest(action="cleanup", number=args.number))


def _rollback(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print(
            "previews: rollback must run as root; the bridge's sudo rule does not allow it",
            file=sys.stderr,
        )
        return EXIT_FAILURE

    # Without a release that serves there is nothing to roll back, and the run's published
    # log would sit in a directory that no vhost serves and no cleanup removes.
    preview = _find(Settings(), args.number)
    if preview is None or not preview.sha:
        print(
            f"previews: PR {args.number} has no preview that serves a release, so there is "
            "nothing to roll back",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return _run_now(PreviewRequest(action="rollback", number=args.number))


def _run_now(request: PreviewRequest) -> int:
    settings = Settings()
    ident = new_ident(settings, request)
    status = launch(settings, request, ident)
    folder = settings.runner_dir / "artifacts" / ident
    print(f"run {ident}: {'successful' if status == 0 else 'failed'}")
    if status != 0:
        try:
            reason = logs.failure_message(folder)
        except PermissionError:
            reason = None
        if reason:
            print(f"reason: {reason}")
    print(f"log: {folder / 'stdout'}")
    return 0 if status == 0 else EXIT_FAILURE


def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    arguments = list(args.arguments)
    work: Callable[[], int]
    if arguments[:1] == [STALE_ACTION]:
        ident, days, numbers = parse_stale_arguments(settings, arguments[1:])
        work = partial(stale.run_cleanup, settings, ident, days, numbers)
    else:
        request, ident = parse_run_arguments(settings, arguments)
        work = partial(_run_request, settings, request, ident)
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
    return work()


def _run_request(settings: Settings, request: PreviewRequest, ident: str) -> int:
    # One run per preview at a time, started by the bridge, by root or by both.
    artifacts = settings.runner_dir / "artifacts"
    preview_id = settings.preview_id(request.number)
    with preview_lock(settings, request.number):
        interrupted.mark_earlier_runs(artifacts, preview_id)
        repair = interrupted.interrupted_since_success(artifacts, preview_id, ident)
        admission_error = capacity.admit(settings, request)
        status = run_playbook(settings, request, ident, admission_error, repair)
    share_artifacts(settings, ident)
    if request.action != "cleanup":
        # A cleanup removes the preview's logs and hosts, so its own log would be unreachable.
        logs.publish(artifacts, settings.logs_dir, settings.data_dir / "tokens", preview_id, ident)
    registry.rotate(
        settings.runner_dir, settings.requests_dir, settings.keep_runs, settings.logs_dir
    )
    return 0 if status == "successful" else EXIT_FAILURE


def _previews(settings: Settings) -> list[registry.Preview]:
    return registry.overview(
        settings.runner_dir,
        Intake(settings.state_dir).blocked(),
        settings.preview_id,
        pins.pinned(settings.pins_dir, strict=False),
    )


def _find(settings: Settings, number: int) -> registry.Preview | None:
    previews = _previews(settings)
    return next((preview for preview in previews if preview.number == number), None)


def _list(args: argparse.Namespace) -> int:
    previews = _previews(Settings())
    if args.json:
        print(json.dumps([preview.as_dict() for preview in previews], indent=2))
        return 0
    if not previews:
        print("no previews")
        return 0
    print(
        f"{'PR':>7}  {'STATUS':<9}  {'PINNED':<6}  {'SHA':<12}  {'UPDATED':<27}  "
        f"{'AUTHOR':<16}  URL OR REASON"
    )
    for preview in previews:
        print(
            f"{preview.number:>7}  {preview.status:<9}  {'yes' if preview.pinned else '':<6}  "
            f"{preview.sha[:12]:<12}  {preview.updated:<27}  {preview.author[:16]:<16}  "
            f"{_detail(preview)}"
        )
    return 0


def _detail(preview: registry.Preview) -> str:
    if preview.blocked:
        return f"blocked {preview.blocked_sha[:12]}: {preview.blocked}"
    if preview.status == "failed" and preview.reason:
        return f"failed: {preview.reason}"
    return next(iter(preview.urls.values()), "")


def _show(args: argparse.Namespace) -> int:
    settings = Settings()
    preview = _find(settings, args.number)
    if preview is None:
        print(f"previews: no preview of PR {args.number}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(preview.as_dict(), indent=2))
        return 0
    for key, value in preview.as_dict().items():
        if isinstance(value, dict):
            value = ", ".join(f"{name}={item}" for name, item in value.items())
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if value != "":
            print(f"{key + ':':<12} {value}")
    return 0


def _history(args: argparse.Namespace) -> int:
    settings = Settings()
    runs = registry.history(
        registry.read_runs(settings.runner_dir), settings.preview_id(args.number)
    )
    if not runs:
        if args.json:
            print("[]")
        print(f"previews: no run of PR {args.number}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps([run.as_dict() for run in runs], indent=2))
        return 0
    print(f"{'TIME':<27}  {'ACTION':<13}  {'STATUS':<10}  {'SHA':<12}  RUN")
    for run in runs:
        print(
            f"{run.time:<27}  {run.action:<13}  {run.status:<10}  "
            f"{str(run.facts.get('sha', ''))[:12]:<12}  {run.ident}"
        )
    return 0


def _logs(args: argparse.Namespace) -> int:
    settings = Settings()
    artifacts = settings.runner_dir / "artifacts"
    ident = args.run or logs.latest_run(artifacts, settings.preview_id(args.number))
    if ident is None or not RUN_IDENT.fullmatch(ident) or not (artifacts / ident).is_dir():
        print(f"previews: no run of PR {args.number} to show", file=sys.stderr)
        return EXIT_FAILURE
    status = logs.copy_output(artifacts / ident, sys.stdout, follow=args.follow)
    if status is None:
        return 0
    print(f"run {ident}: {status}", file=sys.stderr)
    return 0 if status == "successful" else EXIT_FAILURE


def _approve(args: argparse.Namespace) -> int:
    settings = Settings()
    blocked = next(
        (
            entry
            for entry in Intake(settings.state_dir).blocked()
            if entry.request.number == args.number
        ),
        None,
    )
    if blocked is None:
        print(
            f"previews: PR {args.number} has no blocked request; "
            "'previews deploy' deploys a pull request that needs no approval",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if blocked.request.sha != args.sha:
        print(
            f"previews: the blocked request of PR {args.number} is for SHA "
            f"{blocked.request.sha}, not {args.sha}; approve the SHA you reviewed",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return _run_now(blocked.request.model_copy(update={"delivery": ""}))


def _cleanup_stale(args: argparse.Namespace) -> int:
    settings = Settings()
    if not 1 <= args.max_age_days <= MAX_STALE_AGE_DAYS:
        print(f"previews: --max-age-days must be 1 to {MAX_STALE_AGE_DAYS}", file=sys.stderr)
        return EXIT_USAGE
    if not args.dry_run and os.geteuid() != 0:
        print("previews: cleanup-stale starts a run as root; run it as root", file=sys.stderr)
        return EXIT_FAILURE

    found = stale.find_stale(settings, args.max_age_days)
    if not found:
        print(f"no unpinned preview has been inactive for {args.max_age_days} days")
        return 0
    for preview in found:
        print(f"PR {preview.number}: last activity {preview.last_activity}")
    if args.dry_run:
        return 0

    ident = new_stale_ident(settings)
    status = launch_stale(settings, ident, args.max_age_days, [preview.number for preview in found])
    print(f"run {ident}: {'successful' if status == 0 else 'failed'}")
    print(f"log: {settings.runner_dir / 'artifacts' / ident / 'stdout'}")
    return 0 if status == 0 else EXIT_FAILURE


def _pin(args: argparse.Namespace) -> int:
    settings = Settings()
    if not _may_change_pins(settings, "pin"):
        return EXIT_FAILURE
    preview_id = settings.preview_id(args.number)
    created = pins.pin(settings.pins_dir, preview_id)
    print(f"{preview_id} {'is now pinned' if created else 'was pinned already'}")
    return 0


def _unpin(args: argparse.Namespace) -> int:
    settings = Settings()
    if not _may_change_pins(settings, "unpin"):
        return EXIT_FAILURE
    preview_id = settings.preview_id(args.number)
    removed = pins.unpin(settings.pins_dir, preview_id)
    print(f"{preview_id} {'is no longer pinned' if removed else 'was not pinned'}")
    return 0


def _may_change_pins(settings: Settings, command: str) -> bool:
    if os.geteuid() == 0:
        return True
    print(
        f"previews: {command} writes {settings.pins_dir}, so it must run as root", file=sys.stderr
    )
    return False


def _audit(args: argparse.Namespace) -> int:
    from bridge import audit

    return audit.print_audit(Settings(), as_json=args.json)


def _reconcile(args: argparse.Namespace) -> int:
    from bridge import reconcile

    return reconcile.run_reconcile(Settings(), dry_run=args.dry_run)


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
