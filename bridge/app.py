"""The webhook bridge: verify, decide, queue a run, respond at once."""

# No "from __future__ import annotations" here: FastAPI must resolve the Annotated
# dependencies of the routes defined inside create_app at run time.
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from bridge import github
from bridge.queue import RunQueue
from bridge.settings import Settings

logger = logging.getLogger(__name__)

MSG_NO_SECRET = (
    "PREVIEWS_WEBHOOK_SECRET is not set: "  # noqa: S105 - an error message, not a secret
    "the bridge cannot verify webhooks without it"
)


def create_app(settings: Settings, queue: RunQueue | None = None) -> FastAPI:
    """Build the bridge. It rejects a configuration without a webhook secret."""
    if settings.webhook_secret is None:
        raise RuntimeError(MSG_NO_SECRET)
    secret = settings.webhook_secret.get_secret_value().encode()
    run_queue = queue or RunQueue(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        run_queue.shutdown()

    # No interactive docs or schema: the webhook endpoint is for forges, not browsers.
    app = FastAPI(
        title="pr-previews bridge",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.queue = run_queue

    async def signed_body(
        request: Request,
        x_hub_signature_256: Annotated[str | None, Header()] = None,
    ) -> bytes:
        body = await _read_capped(request, settings.max_body_bytes)
        if not github.signature_is_valid(secret, body, x_hub_signature_256):
            logger.warning("rejected a webhook with a missing or invalid signature")
            raise HTTPException(HTTPStatus.UNAUTHORIZED, "invalid or missing signature")
        return body

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/github")
    async def github_webhook(
        body: Annotated[bytes, Depends(signed_body)],
        x_github_event: Annotated[str, Header()] = "",
        x_github_delivery: Annotated[str, Header()] = "",
    ) -> JSONResponse:
        payload = _parse_json(body)

        if x_github_event == "ping":
            return JSONResponse({"status": "pong"})
        if x_github_event != "pull_request":
            return _ignored(f"event {x_github_event!r} starts no run")

        try:
            decision = github.parse_pull_request(payload, x_github_delivery)
        except github.PayloadError as error:
            raise HTTPException(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from error
        except ValidationError as error:
            raise HTTPException(HTTPStatus.UNPROCESSABLE_ENTITY, _describe(error)) from error
        if isinstance(decision, github.Ignored):
            return _ignored(decision.reason)

        ident, _ = run_queue.submit(decision)
        logger.info(
            "delivery %s accepted: %s of PR %s as run %s",
            x_github_delivery or "-",
            decision.action,
            decision.number,
            ident,
        )
        return JSONResponse(
            {"status": "accepted", "action": decision.action, "run": ident},
            status_code=HTTPStatus.ACCEPTED,
        )

    return app


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


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'request'}: {item['msg']}"
        for item in error.errors()
    )
