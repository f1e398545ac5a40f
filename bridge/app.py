"""The webhook bridge: verify, decide, persist, respond at once; the runs follow."""

# No "from __future__ import annotations" here: FastAPI must resolve the Annotated
# dependencies of the routes defined inside create_app at run time.
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bridge import api, gitea, github, gitlab, registry, trust
from bridge.forge import Ignored, PayloadError, PullRequestEvent
from bridge.intake import Blocked, now
from bridge.queue import RunQueue
from bridge.report import Reporter, build_reporter
from bridge.reporting import ForgeReports
from bridge.settings import Settings

logger = logging.getLogger(__name__)

MSG_NO_SECRET = (
    "PREVIEWS_WEBHOOK_SECRET is not set: "  # noqa: S105 - an error message, not a secret
    "the bridge cannot verify webhooks without it"
)
JSON_TYPES = frozenset({"application/json"})
PRUNE_INTERVAL_SECONDS = 3600.0

Parser = Callable[[dict[str, Any], str], PullRequestEvent | Ignored]


def create_app(
    settings: Settings, queue: RunQueue | None = None, reporter: Reporter | None = None
) -> FastAPI:
    """Build the bridge. It rejects a configuration without a webhook secret, and
    incomplete reporting settings (ReportSettingsError names the variable to set)."""
    if settings.webhook_secret is None:
        raise RuntimeError(MSG_NO_SECRET)
    secret = settings.webhook_secret.get_secret_value().encode()
    run_queue = queue or RunQueue(settings)
    intake = run_queue.intake
    reports = ForgeReports(settings, reporter or build_reporter(settings))
    run_queue.add_listener(reports)

    last_prune: float | None = None

    def forget_old_deliveries() -> None:
        """Remove expired delivery ids at start and then at most once an hour."""
        nonlocal last_prune
        now_seconds = time.monotonic()
        if last_prune is not None and now_seconds - last_prune < PRUNE_INTERVAL_SECONDS:
            return
        last_prune = now_seconds
        removed = intake.forget_deliveries(settings.delivery_retention_days)
        if removed:
            logger.info(
                "forgot %s delivery ids older than %s days",
                removed,
                settings.delivery_retention_days,
            )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        run_queue.resume()
        forget_old_deliveries()
        yield
        run_queue.shutdown()
        reports.shutdown()

    # The schema documents the operator API; the webhook endpoints are for forges.
    app = FastAPI(
        title="pr-previews bridge",
        summary="Webhook intake and operator API of pr-previews",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.queue = run_queue
    app.include_router(api.router(settings, run_queue))
    app.add_exception_handler(PayloadError, _payload_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

    async def body_of(request: Request) -> bytes:
        _check_content_type(request)
        return await _read_capped(request, settings.max_body_bytes)

    def _reject_unsigned() -> HTTPException:
        logger.warning("rejected a webhook with a missing or invalid signature")
        return HTTPException(HTTPStatus.UNAUTHORIZED, "invalid or missing signature")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/github", include_in_schema=False)
    def github_webhook(
        body: Annotated[bytes, Depends(body_of)],
        x_hub_signature_256: Annotated[str | None, Header()] = None,
        x_github_event: Annotated[str, Header()] = "",
        x_github_delivery: Annotated[str, Header()] = "",
    ) -> JSONResponse:
        if not github.signature_is_valid(secret, body, x_hub_signature_256):
            raise _reject_unsigned()
        payload = _parse_json(body)
        if x_github_event == "ping":
            return JSONResponse({"status": "pong"})
        if x_github_event != "pull_request":
            return _ignored(f"event {x_github_event!r} starts no run")
        return _handle(github.parse_pull_request, payload, x_github_delivery)

    @app.post("/webhooks/gitea", include_in_schema=False)
    def gitea_webhook(request: Request, body: Annotated[bytes, Depends(body_of)]) -> JSONResponse:
        """Gitea and Forgejo, which sign alike."""
        if not gitea.signature_is_valid(secret, body, gitea.signature_header(request.headers)):
            raise _reject_unsigned()
        payload = _parse_json(body)
        if not gitea.is_pull_request_event(request.headers):
            return _ignored(f"event {gitea.event_type(request.headers)!r} starts no run")
        return _handle(gitea.parse_pull_request, payload, gitea.delivery_id(request.headers))

    @app.post("/webhooks/gitlab", include_in_schema=False)
    def gitlab_webhook(
        request: Request,
        body: Annotated[bytes, Depends(body_of)],
        x_gitlab_token: Annotated[str | None, Header()] = None,
        x_gitlab_event: Annotated[str, Header()] = "",
    ) -> JSONResponse:
        if not gitlab.token_is_valid(secret, x_gitlab_token):
            raise _reject_unsigned()
        payload = _parse_json(body)
        if not gitlab.is_merge_request_event(request.headers):
            return _ignored(f"event {x_gitlab_event!r} starts no run")
        return _handle(gitlab.parse_pull_request, payload, gitlab.delivery_id(request.headers))

    def _handle(parse: Parser, payload: dict[str, Any], delivery: str) -> JSONResponse:
        if intake.seen(delivery):
            return _ignored(f"delivery {delivery} was already accepted")
        event = parse(payload, delivery)
        if isinstance(event, Ignored):
            return _ignored(event.reason)
        return _accept(event, delivery)

    def _accept(event: PullRequestEvent, delivery: str) -> JSONResponse:
        decision = trust.decide(event, settings, lambda: _served_sha(event.request.number))
        if isinstance(decision, Ignored):
            return _ignored(decision.reason)
        if isinstance(decision, trust.Hold):
            intake.block(Blocked(decision.request, decision.reason, now()))
            intake.remember(delivery)
            reports.blocked(decision.request, decision.reason)
            logger.info(
                "delivery %s blocked: PR %s %s",
                delivery or "-",
                decision.request.number,
                decision.reason,
            )
            return JSONResponse({"status": "blocked", "reason": decision.reason})

        accepted = run_queue.submit(decision.request)
        intake.unblock(decision.request.number)
        intake.remember(delivery)
        forget_old_deliveries()
        logger.info(
            "delivery %s accepted: %s of PR %s as run %s%s",
            delivery or "-",
            decision.request.action,
            decision.request.number,
            accepted.ident,
            f", approved by {decision.approved_by}" if decision.approved_by else "",
        )
        return JSONResponse(
            {"status": "accepted", "action": decision.request.action, "run": accepted.ident},
            status_code=HTTPStatus.ACCEPTED,
        )

    def _served_sha(number: int) -> str:
        preview_id = settings.preview_id(number)
        for preview in registry.list_previews(settings.runner_dir):
            if preview.id == preview_id and preview.status == "active":
                return preview.sha
        return ""

    return app


def _check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        # GitHub sends application/x-www-form-urlencoded unless the hook asks for JSON.
        raise HTTPException(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/json; set the webhook's content type to JSON",
        )


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        # ValueError covers invalid JSON, invalid UTF-8 and numbers over Python's digit limit.
        raise HTTPException(HTTPStatus.BAD_REQUEST, "body is not valid JSON") from error
    if not isinstance(payload, dict):
        raise HTTPException(HTTPStatus.BAD_REQUEST, "body is not a JSON object")
    return payload


def _ignored(reason: str) -> JSONResponse:
    return JSONResponse({"status": "ignored", "reason": reason}, status_code=HTTPStatus.OK)


async def _payload_error(request: Request, error: Exception) -> JSONResponse:
    if not isinstance(error, PayloadError):
        raise error
    return JSONResponse(
        {"detail": [{"field": error.field, "reason": error.reason}]},
        status_code=HTTPStatus.UNPROCESSABLE_ENTITY,
    )


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """Name each invalid header, path or query field and say why, without echoing input."""
    if not isinstance(error, RequestValidationError):
        raise error
    detail = [
        {
            "field": ".".join(str(part) for part in item["loc"]),
            "reason": str(item["msg"]).removeprefix("Value error, "),
        }
        for item in error.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=HTTPStatus.UNPROCESSABLE_ENTITY)
