"""The outermost layer of the web app, in front of every route (FastAPI's and Gradio's alike).

- The client's address: the peer, or from X-Forwarded-For only when the peer is a listed trusted proxy.
- A cap on request bodies, applied before anything parses them (413), by Content-Length and by counting.
- Paths that are never served: Gradio's upload and file routes, which the console does not need.
- Security headers on every response, errors included; `Cache-Control: no-store` on the API.
- No input gives a traceback: an unexpected error becomes a quiet 500 and a log line with its type only.

A pure ASGI middleware, so it also wraps the responses Starlette's own error handling would otherwise send bare.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Pages built by the app itself (the widget, the embed, the demo, the sign-in): scripts and styles from files only.
STRICT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'"
)
# The sign-in page and the demo page carry a small inline stylesheet, and no inline script.
INLINE_STYLE_POLICY = STRICT_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
# The Gradio console needs inline scripts and styles; still nothing from another origin (no CDNs, no trackers).
CONSOLE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'self'; "
    "object-src 'none'"
)
# Gradio routes with no use in the console that would accept or hand out files (the file-read class of attack).
NEVER_SERVED = ("/gradio_api/upload", "/gradio_api/file=", "/gradio_api/file/", "/file=", "/upload")


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True)
class TrustedProxies:
    """The reverse proxies whose X-Forwarded-For header is believed (addresses or CIDR blocks)."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: list[str]) -> TrustedProxies:
        return cls(tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip()))

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        """The address of whoever sent the request: walk X-Forwarded-For from the nearest hop back while each hop is
        a trusted proxy, and stop at the first that is not (everything before it could be made up by the client)."""
        if not self.trusts(peer):
            return peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if not self.trusts(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # a hop that is not an address: believe nothing further back
        return peer


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        proxies: TrustedProxies,
        max_body: int,
        max_console_body: int,
        site_origins: list[str],
    ):
        self.app = app
        self.proxies = proxies
        self.max_body = max_body
        self.max_console_body = max_console_body
        self.framers = " ".join(["'self'", *site_origins])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        staff = path.startswith("/staff")
        self._resolve_client(scope)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._headers(path, staff, list(message.get("headers", [])), scope)
            await send(message)

        if any(part in path for part in NEVER_SERVED):
            await self._error(send_with_headers, 404, "Not found.")
            return
        limit = self.max_console_body if staff else self.max_body
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._error(send_with_headers, 413, f"The request is too large (over {limit // 1024} KB).")
            return
        received = 0

        async def receive_capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, receive_capped, send_with_headers)
        except BodyTooLarge:
            if not started:
                await self._error(send_with_headers, 413, f"The request is too large (over {limit // 1024} KB).")
        except Exception as exc:  # the last fence: a quiet 500, and a log line with the type only
            log.error("request to %s failed: %s", _route_name(path), type(exc).__name__)
            if not started:
                await self._error(send_with_headers, 500, "Something went wrong on our side. Please try again.")

    def _resolve_client(self, scope: Scope) -> None:
        peer, port = scope.get("client") or ("", 0)
        forwarded = ""
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                forwarded = f"{forwarded},{value.decode('latin-1')}" if forwarded else value.decode("latin-1")
        scope["client"] = (self.proxies.client(peer, forwarded), port)

    def _headers(self, path: str, staff: bool, headers: list[tuple[bytes, bytes]], scope: Scope) -> list[Any]:
        present = {name.lower() for name, _ in headers}

        def add(name: str, value: str) -> None:
            if name.encode() not in present:
                headers.append((name.encode(), value.encode()))

        if path.startswith("/staff/console"):
            policy = CONSOLE_POLICY
        elif staff or path == "/demo":
            policy = INLINE_STYLE_POLICY
        else:
            policy = STRICT_POLICY
        framers = "'none'" if staff else self.framers
        add("content-security-policy", f"{policy}; frame-ancestors {framers}")
        add("x-content-type-options", "nosniff")
        # The console needs its own origin on form posts (the CSRF origin check); patients' pages send nothing.
        add("referrer-policy", "same-origin" if staff else "no-referrer")
        add("cross-origin-opener-policy", "same-origin")
        add("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()")
        if path.startswith("/api/") or staff:
            add("cache-control", "no-store")
        if scope.get("scheme") == "https":
            add("strict-transport-security", "max-age=31536000; includeSubDomains")
        return headers

    @staticmethod
    async def _error(send: Send, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _route_name(path: str) -> str:
    """The path's first two segments: enough to find the route, never an id or a query a patient typed."""
    return "/".join(path.split("/")[:3])[:40]
