"""The operator API under /api: previews, their runs and the runs' logs, read only.

Every route needs `Authorization: Bearer <PREVIEWS_API_TOKEN>`. Without a configured
token the API is off and answers 403.
"""

# No "from __future__ import annotations": FastAPI resolves the route annotations at run time.
import hmac
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from bridge import pins, registry
from bridge.queue import RunQueue
from bridge.run_command import RUN_IDENT
from bridge.settings import Settings

MAX_LOG_BYTES = 4 * 1024 * 1024
Number = Annotated[int, Path(ge=1, le=9_999_999, description="pull-request number")]


class PreviewOut(BaseModel):
    """A preview as the registry folds it; blocked previews wait for an approval."""

    id: str
    number: int
    status: str
    sha: str
    ref: str
    author: str
    created: str
    updated: str
    urls: dict[str, str]
    ports: dict[str, int]
    last_run: str
    last_time: str
    blocked: str
    blocked_sha: str
    reason: str = ""
    pinned: bool = False
    queued: str = ""


class RunOut(BaseModel):
    """One run of a preview, as its artifacts record it."""

    ident: str
    action: str
    status: str
    time: str
    sha: str
    ref: str
    author: str


def router(settings: Settings, queue: RunQueue) -> APIRouter:
    bearer = HTTPBearer(auto_error=False, description="the operator API token")

    def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if settings.api_token is None:
            raise HTTPException(
                HTTPStatus.FORBIDDEN, "the operator API is off: set PREVIEWS_API_TOKEN"
            )
        expected = settings.api_token.get_secret_value().encode()
        given = (credentials.credentials if credentials else "").encode("utf-8", "replace")
        if not hmac.compare_digest(expected, given):
            raise HTTPException(
                HTTPStatus.UNAUTHORIZED,
                "missing or wrong API token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    api = APIRouter(prefix="/api", tags=["operator"], dependencies=[Depends(authorize)])

    def current() -> list[PreviewOut]:
        previews = registry.overview(
            settings.runner_dir,
            queue.intake.blocked(),
            settings.preview_id,
            pins.pinned(settings.pins_dir, strict=False),
        )
        queued = queue.queued()
        shown = {preview.number: PreviewOut(**preview.as_dict()) for preview in previews}
        for number, accepted in queued.items():
            preview = shown.get(number)
            if preview is None:
                preview = shown[number] = _queued_preview(settings, accepted.request.number)
            preview.queued = f"{accepted.request.action} {accepted.ident}"
        return sorted(shown.values(), key=lambda preview: preview.number)

    @api.get("/previews", summary="List previews: active, failed, blocked or queued")
    def list_previews() -> list[PreviewOut]:
        return current()

    @api.get("/previews/{number}", summary="Show one preview", responses={404: {}})
    def show_preview(number: Number) -> PreviewOut:
        for preview in current():
            if preview.number == number:
                return preview
        raise HTTPException(HTTPStatus.NOT_FOUND, f"no preview of PR {number}")

    @api.get("/previews/{number}/runs", summary="List a preview's runs, oldest first")
    def preview_runs(number: Number) -> list[RunOut]:
        runs = registry.history(
            registry.read_runs(settings.runner_dir), settings.preview_id(number)
        )
        return [RunOut(**run.as_dict()) for run in runs]

    @api.get(
        "/runs/{ident}/log",
        summary="A run's output, as ansible-runner recorded it",
        response_class=PlainTextResponse,
        responses={404: {}},
    )
    def run_log(
        ident: Annotated[str, Path(pattern=RUN_IDENT.pattern, description="run ident")],
    ) -> PlainTextResponse:
        path = settings.runner_dir / "artifacts" / ident / "stdout"
        try:
            with path.open("rb") as file:
                data = file.read(MAX_LOG_BYTES)
        except (FileNotFoundError, PermissionError) as error:
            raise HTTPException(HTTPStatus.NOT_FOUND, f"no readable log of run {ident}") from error
        return PlainTextResponse(data.decode("utf-8", "replace"))

    return api


def _queued_preview(settings: Settings, number: int) -> PreviewOut:
    return PreviewOut(
        id=settings.preview_id(number),
        number=number,
        status="queued",
        sha="",
        ref="",
        author="",
        created="",
        updated="",
        urls={},
        ports={},
        last_run="",
        last_time="",
        blocked="",
        blocked_sha="",
    )
