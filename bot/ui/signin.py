"""The staff side of the web app: sign-in and sign-out pages, the guard in front of the console, and its mount.

Sessions are server-side (random cookie token, hashed in the database), the cookie is HttpOnly and
SameSite=Strict, forms carry a CSRF token, and every state-changing request under /staff must come
from our own origin. Never logs an email's password or a session token.
"""

from __future__ import annotations

import contextlib
import html
from typing import Any
from urllib.parse import urlparse

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.auth import CSRF_COOKIE, SESSION_COOKIE, THROTTLE_WINDOW, Auth, csrf_ok, new_csrf_token
from bot.bulkhead import Bulkhead
from bot.config import Settings
from bot.curation import Curation
from bot.errors import StoreUnavailable
from bot.ratelimit import Limit, RateLimiter
from bot.store import Store

CONSOLE = "/staff/console"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Sign-in attempts, counted before the password is checked so that many sent at once cannot pass the limit.
# Per account: a guessed password; per address: one machine trying many accounts. A success is not counted.
ACCOUNT_ATTEMPTS = Limit("sign-in account", 5, int(THROTTLE_WINDOW.total_seconds()))
ADDRESS_ATTEMPTS = Limit("sign-in address", 20, int(THROTTLE_WINDOW.total_seconds()))

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Staff sign-in: {clinic}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f5f7fa; color: #1a1a1a; margin: 0; }}
main {{ max-width: 22rem; margin: 10vh auto; background: #fff; padding: 2rem; border-radius: 12px;
       box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
label {{ display: block; margin-top: 1rem; font-weight: 600; }}
input {{ width: 100%; box-sizing: border-box; padding: .6rem; margin-top: .3rem; font-size: 1rem;
        border: 1px solid #6b7280; border-radius: 6px; }}
button {{ margin-top: 1.5rem; width: 100%; padding: .7rem; font-size: 1rem; border: 0; border-radius: 6px;
         background: #1f4e79; color: #fff; cursor: pointer; }}
button:focus-visible, input:focus-visible {{ outline: 3px solid #f59e0b; outline-offset: 2px; }}
.error {{ background: #fde8e8; color: #8a1c1c; padding: .6rem; border-radius: 6px; }}
</style></head>
<body><main>
<h1>{clinic}: staff console</h1>
{message}
<form method="post" action="/staff/login">
<input type="hidden" name="csrf" value="{csrf}">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form></main></body></html>"""


def _same_origin(request: Request) -> bool:
    """A state-changing request must name our own host as its Origin (or, failing that, its Referer)."""
    claimed = request.headers.get("origin") or request.headers.get("referer") or ""
    host = request.headers.get("host", "")
    return bool(claimed) and urlparse(claimed).netloc == host


def add_staff_routes(
    app: FastAPI, settings: Settings, store: Store, curation: Curation, limiter: RateLimiter, db: Bulkhead
) -> None:
    import gradio as gr
    from starlette.concurrency import run_in_threadpool

    from bot.ui import staff

    auth = Auth(store, session_hours=settings.staff_session_hours)

    def secure(request: Request) -> bool:
        return request.url.scheme == "https" or settings.production

    def login_page(request: Request, message: str = "", status: int = 200) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        body = _PAGE.format(
            clinic=html.escape(settings.clinic_name),
            csrf=token,
            message=f'<p class="error" role="alert">{html.escape(message)}</p>' if message else "",
        )
        response = HTMLResponse(body, status_code=status)
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure(request), path="/staff")
        return response

    def signed_in(request: Request) -> str | None:
        """The signed-in email, looked up once per request (the guard and Gradio's auth both ask)."""
        if hasattr(request.state, "staff_email"):
            return request.state.staff_email
        token = request.cookies.get(SESSION_COOKIE)
        try:
            user = db.call(lambda: auth.user_for(token)) if token else None
        except StoreUnavailable:
            user = None
        request.state.staff_email = user.email if user else None
        return request.state.staff_email

    @app.middleware("http")
    async def guard_staff(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if path.startswith("/staff") and request.method in _UNSAFE and not _same_origin(request):
            return JSONResponse({"error": "refused: this request did not come from the staff console"}, 403)
        # The session lookup waits on the database: off the event loop, so a hung database stalls no other route.
        if path.startswith(CONSOLE) and await run_in_threadpool(signed_in, request) is None:
            if request.method == "GET" and path.rstrip("/") == CONSOLE:
                return RedirectResponse("/staff/login", status_code=303)
            return JSONResponse({"error": "sign in at /staff/login first"}, status_code=401)
        return await call_next(request)

    @app.get("/staff", include_in_schema=False)
    def staff_home(request: Request) -> Response:
        return RedirectResponse(f"{CONSOLE}/" if signed_in(request) else "/staff/login", status_code=303)

    @app.get("/staff/login", include_in_schema=False)
    def login_form(request: Request) -> Response:
        if signed_in(request):
            return RedirectResponse(f"{CONSOLE}/", status_code=303)
        return login_page(request)

    @app.post("/staff/login", include_in_schema=False)
    def login(request: Request, email: str = Form(""), password: str = Form(""), csrf: str = Form("")) -> Response:
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
            return login_page(request, "The form expired. Please try again.", status=403)
        address = request.client.host if request.client else "unknown"
        account = email.strip().lower()[:128]
        if not (limiter.hit(ACCOUNT_ATTEMPTS, account) and limiter.hit(ADDRESS_ATTEMPTS, address)):
            return login_page(request, "Too many sign-in attempts. Wait 15 minutes, then try again.", status=429)
        try:
            token = db.call(lambda: auth.sign_in(email, password), timeout_s=settings.store_timeout_s + 1)
        except StoreUnavailable:
            return login_page(request, "Sign-in is unavailable: the database cannot be reached.", status=503)
        if token is None:
            return login_page(request, "Wrong email or password.", status=401)
        limiter.undo(ACCOUNT_ATTEMPTS, account)
        response = RedirectResponse(f"{CONSOLE}/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(auth.lifetime.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path="/staff",
        )
        return response

    @app.post("/staff/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        with contextlib.suppress(StoreUnavailable):  # the cookie goes anyway; the session row ends at its expiry
            db.call(lambda: auth.sign_out(token))
        response = RedirectResponse("/staff/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/staff")
        return response

    console = staff.create_app(curation, store)
    gr.mount_gradio_app(
        app,
        console,
        path=CONSOLE,
        auth_dependency=signed_in,
        footer_links=[],
        css=staff.CSS,
        # The console takes no files; Gradio's upload and file routes are refused by bot/httpguard.py before Gradio
        # sees them (blocked_paths=["/"] would also stop the console's own events).
        max_file_size=1,
    )
