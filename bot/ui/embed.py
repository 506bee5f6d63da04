"""The embed: GET /embed.js puts an "Ask us" button on a clinic's own site that opens the widget; GET /demo shows it.

The script reads nothing from the host page and holds no secrets; the widget's address comes from the script's own src.
"""

from __future__ import annotations

import html
import json

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from bot.config import Settings
from bot.ui.patient import brand

SNIPPET = '<script src="{origin}/embed.js" async></script>'

# Styles are set through element.style, which a host page's Content-Security-Policy does not block.
_SCRIPT = """(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.clinicbotEmbed) return;
  window.clinicbotEmbed = true;
  var config = __CONFIG__;
  var origin = new URL(script.src).origin;
  var button = document.createElement("button");
  var frame = null;

  function style(el, styles) { for (var name in styles) el.style[name] = styles[name]; }

  function label(open) {
    button.textContent = open ? "Close" : "Ask us";
    button.setAttribute("aria-label", open ? "Close the chat" : "Ask " + config.name + " about treatments");
    button.setAttribute("aria-expanded", String(open));
  }

  function open() {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.id = "clinicbot-frame";
      frame.title = "Chat with " + config.name;
      frame.src = origin + "/";
      style(frame, {position: "fixed", right: "12px", bottom: "76px", zIndex: "2147483647",
        width: "min(400px, calc(100vw - 24px))", height: "min(640px, calc(100vh - 100px))",
        border: "1px solid #9ca3af", borderRadius: "12px", background: "#ffffff",
        boxShadow: "0 4px 24px rgba(0, 0, 0, 0.25)"});
      frame.style.height = "min(640px, calc(100dvh - 100px))";  // ignored where dvh is unknown
      document.body.appendChild(frame);
    }
    frame.style.display = "block";
    label(true);
    frame.focus();
  }

  function close() {
    if (!frame || frame.style.display === "none") return;
    frame.style.display = "none";
    label(false);
    button.focus();
  }

  button.type = "button";
  button.id = "clinicbot-launcher";
  button.setAttribute("aria-controls", "clinicbot-frame");
  label(false);
  style(button, {position: "fixed", right: "12px", bottom: "12px", zIndex: "2147483647",
    padding: "12px 20px", border: "0", borderRadius: "24px", background: config.color, color: config.text,
    font: "600 16px/1.2 system-ui, sans-serif", cursor: "pointer", boxShadow: "0 2px 8px rgba(0, 0, 0, 0.35)"});
  button.addEventListener("click", function () {
    if (frame && frame.style.display !== "none") close(); else open();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") close();
  });
  // Escape pressed inside the widget arrives as a message from the frame (see static/widget.js).
  window.addEventListener("message", function (event) {
    if (frame && event.origin === origin && event.source === frame.contentWindow && event.data === "clinicbot:close") {
      close();
    }
  });

  function mount() { document.body.appendChild(button); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
"""


def embed_script(settings: Settings) -> str:
    color, text = brand(settings)
    return _SCRIPT.replace("__CONFIG__", json.dumps({"name": settings.clinic_name, "color": color, "text": text}))


def demo_page(settings: Settings, origin: str) -> str:
    name = html.escape(settings.clinic_name)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} (demo site)</title>
<style>
body {{ margin: 0; font: 16px/1.5 system-ui, sans-serif; color: #1f2937; background: #ffffff; }}
header {{ padding: 16px; background: #f3f4f6; }}
main {{ max-width: 720px; margin: 0 auto; padding: 16px; }}
pre {{ padding: 12px; background: #f3f4f6; white-space: pre-wrap; word-break: break-all; }}
</style>
</head>
<body>
<header><strong>{name}</strong>: a pretend clinic website</header>
<main>
<h1>Welcome to {name}</h1>
<p>This page carries the chat widget the way a clinic's own site would: press <strong>Ask us</strong>
at the bottom right, and press Escape to close it again.</p>
<h2>Add it to your site</h2>
<p>Paste this one line before <code>&lt;/body&gt;</code>:</p>
<pre><code>{html.escape(SNIPPET.format(origin=origin))}</code></pre>
</main>
<script src="/embed.js" async></script>
</body>
</html>
"""


def add_embed_routes(app: FastAPI, settings: Settings) -> None:
    @app.get("/embed.js", include_in_schema=False)
    def embed_js() -> Response:
        return Response(
            embed_script(settings),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @app.get("/demo", response_class=HTMLResponse, include_in_schema=False)
    def demo(request: Request) -> str:
        return demo_page(settings, str(request.base_url).rstrip("/"))
