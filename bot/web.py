"""The web app: FastAPI with the HTTP interface of DESIGN.md, the patient widget at / and the console at /staff.

Models load and warm once, when the app is created, never per message. The patient side is our own small page
over /api/chat; Gradio serves only the signed-in console. Blocking work (the pipeline, the stores) runs on
threads of its own with deadlines, so a hung database or Chroma server never holds up the event loop, the
health check, the embed script or the sign-in page.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bot.chat import Pipeline
from bot.config import Settings, get_settings
from bot.curation import Curation
from bot.errors import ClinicbotError, InvalidMessage, StoreUnavailable
from bot.httpguard import Guard, TrustedProxies
from bot.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")

HEALTH_DEADLINE_S = 1.0


class ChatRequest(BaseModel):
    message: Any = None
    session: Any = None


class FeedbackRequest(BaseModel):
    reply_id: Any = None
    helpful: bool
    comment: Any = ""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _schedule_purge(pipeline: Pipeline, limiter: RateLimiter, every_s: float = 6 * 3600) -> None:
    """Delete conversations past the retention period (and expired rate-limit counters) now and every few hours."""
    store = pipeline.store
    if store is None:
        return

    def run() -> None:
        try:
            count = store.purge(pipeline.settings.retention_days, actor="serve (scheduled)")
            store.drop_expired_counters()
            log.info("retention purge removed %d exchanges", count)
        except ClinicbotError as exc:
            log.warning("retention purge skipped: %s", type(exc).__name__)
        timer = threading.Timer(every_s, run)
        timer.daemon = True
        timer.start()

    run()


def private_gradio_dir(settings: Settings) -> Path:
    """Gradio's cache and upload folder: inside the data dir, readable by this user only, emptied at each start.

    Set before Gradio is imported, because Gradio reads the setting then."""
    folder = (settings.data_dir / "gradio-cache").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    return folder


def create_app(pipeline: Pipeline | None = None) -> FastAPI:
    settings = get_settings() if pipeline is None else pipeline.settings
    private_gradio_dir(settings)
    from bot.ui import patient
    from bot.ui.embed import add_embed_routes
    from bot.ui.signin import add_staff_routes

    if pipeline is None:
        pipeline = Pipeline.build(settings, need_index=False)
    pipeline.warm()
    limiter = RateLimiter(pipeline.store, settings.secret_key, pipeline.db)
    chat_limit = Limit("chat", settings.rate_limit_per_minute, 60)
    feedback_limit = Limit("feedback", settings.feedback_limit_per_minute, 60)
    workers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="chat")
    health_workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")
    _schedule_purge(pipeline, limiter)

    app = FastAPI(title="clinicbot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pipeline = pipeline

    async def off_loop(fn: Callable[[], T], pool: ThreadPoolExecutor = workers) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer quotes the input back; this one names the fields only.
        fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) or "body" for e in exc.errors()})
        return _error(400, f"The request could not be read: check {', '.join(fields)} (a JSON object is expected).")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            health = await asyncio.wait_for(off_loop(pipeline.health, health_workers), HEALTH_DEADLINE_S)
        except TimeoutError:
            health = {"status": "degraded", "detail": f"a store did not answer within {HEALTH_DEADLINE_S:.0f} s"}
        return JSONResponse(health, status_code=200 if health["status"] != "down" else 503)

    @app.post("/api/chat")
    async def chat(body: ChatRequest, request: Request) -> JSONResponse:
        client = request.client.host if request.client else "unknown"

        def work() -> JSONResponse:
            if not limiter.hit(chat_limit, client):
                return _error(429, "Too many messages: please wait a minute and try again.")
            try:
                reply = pipeline.ask(body.message, session=body.session)
            except InvalidMessage as exc:
                return _error(400, str(exc))
            except ClinicbotError as exc:
                log.error("chat failed: %s", type(exc).__name__)
                return _error(503, f"The assistant can't answer right now; please call {settings.clinic_phone}.")
            out = reply.public(None)
            out.update(session=reply.session, reply_id=reply.reply_id, stored=reply.stored, spooled=reply.spooled)
            return JSONResponse(out)

        return await off_loop(work)

    @app.post("/api/feedback")
    async def feedback(body: FeedbackRequest, request: Request) -> JSONResponse:
        client = request.client.host if request.client else "unknown"

        def work() -> JSONResponse:
            if not limiter.hit(feedback_limit, client):
                return _error(429, "Too many ratings: please wait a minute and try again.")
            if not isinstance(body.comment, str):
                return _error(400, "The comment must be text.")
            try:
                found = pipeline.feedback(body.reply_id, body.helpful, body.comment)
            except InvalidMessage as exc:
                return _error(400, str(exc))
            except StoreUnavailable:
                return _error(503, "Feedback can't be saved right now; please try again later.")
            if not found:
                return _error(404, "No reply with that id; send the reply_id returned by /api/chat.")
            return JSONResponse({"ok": True})

        return await off_loop(work)

    if pipeline.store is not None:
        curation = Curation(settings.knowledge_dir, pipeline.store, on_publish=pipeline.reindex)
        add_staff_routes(app, settings, pipeline.store, curation, limiter, pipeline.db)
    add_embed_routes(app, settings)
    patient.add_widget_routes(app, settings)
    patient.add_image_routes(app, settings)
    app.add_middleware(  # added last, so it is the outermost layer: every response passes through it
        Guard,  # type: ignore[arg-type]
        proxies=TrustedProxies.parse(settings.trusted_proxies),
        max_body=settings.max_body_bytes,
        max_console_body=settings.max_console_body_bytes,
        site_origins=settings.site_origins,
    )
    return app
