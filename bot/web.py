"""The web app: FastAPI with the HTTP interface of DESIGN.md, the patient widget at / and the console at /staff.

Models load once, when the app is created, never per message.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bot.chat import Pipeline
from bot.config import get_settings
from bot.curation import Curation
from bot.errors import ClinicbotError, InvalidMessage, StoreUnavailable
from bot.ratelimit import RateLimiter

log = logging.getLogger(__name__)


class ChatRequest(BaseModel):
    message: Any = None
    session: str | None = None


class FeedbackRequest(BaseModel):
    reply_id: str
    helpful: bool
    comment: str = ""


# Gradio needs inline scripts and styles; everything else comes from this origin only (no CDNs, no trackers).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'self'; "
    "object-src 'none'"
)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _schedule_purge(pipeline: Pipeline, every_s: float = 6 * 3600) -> None:
    """Delete conversations older than the retention period now and every few hours, in the background."""
    store = pipeline.store
    if store is None:
        return

    def run() -> None:
        try:
            count = store.purge(pipeline.settings.retention_days, actor="serve (scheduled)")
            log.info("retention purge removed %d exchanges", count)
        except ClinicbotError as exc:
            log.warning("retention purge skipped: %s", type(exc).__name__)
        timer = threading.Timer(every_s, run)
        timer.daemon = True
        timer.start()

    run()


def create_app(pipeline: Pipeline | None = None) -> FastAPI:
    import gradio as gr

    from bot.ui import patient
    from bot.ui.embed import add_embed_routes
    from bot.ui.signin import add_staff_routes

    settings = get_settings() if pipeline is None else pipeline.settings
    if pipeline is None:
        pipeline = Pipeline.build(settings, need_index=False)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    _schedule_purge(pipeline)
    app = FastAPI(title="clinicbot", docs_url=None, redoc_url=None)
    app.state.pipeline = pipeline

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        health = pipeline.health()
        return JSONResponse(health, status_code=200 if health["status"] != "down" else 503)

    @app.post("/api/chat")
    def chat(body: ChatRequest, request: Request) -> JSONResponse:
        client = request.client.host if request.client else "unknown"
        if not limiter.allow(f"api:{client}"):
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

    @app.post("/api/feedback")
    def feedback(body: FeedbackRequest) -> JSONResponse:
        try:
            found = pipeline.feedback(body.reply_id, body.helpful, body.comment)
        except InvalidMessage as exc:
            return _error(400, str(exc))
        except StoreUnavailable:
            return _error(503, "Feedback can't be saved right now; please try again later.")
        if not found:
            return _error(404, "No reply with that id; send the reply_id returned by /api/chat.")
        return JSONResponse({"ok": True})

    if pipeline.store is not None:
        curation = Curation(settings.knowledge_dir, pipeline.store, on_publish=pipeline.reindex)
        add_staff_routes(app, settings, pipeline.store, curation)

    @app.middleware("http")  # registered last, so it wraps every response, refusals included
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        staff = request.url.path.startswith("/staff")
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # The console needs its own origin on form posts (the CSRF origin check); patients' pages send nothing.
        headers.setdefault("Referrer-Policy", "same-origin" if staff else "no-referrer")
        framers = "'none'" if staff else " ".join(["'self'", *settings.site_origins])
        headers.setdefault("Content-Security-Policy", f"{PAGE_POLICY}; frame-ancestors {framers}")
        if request.url.scheme == "https":
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    add_embed_routes(app, settings)
    widget = patient.create_app(pipeline, limiter)
    return gr.mount_gradio_app(
        app, widget, path="/", theme=gr.themes.Soft(), css=patient.css(settings), head=patient.HEAD, footer_links=[]
    )
