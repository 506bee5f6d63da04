"""The patient widget: our own page at /, its script at /widget.js and its stylesheet at /widget.css.

The page is built once from the settings, every clinic value escaped, with no inline script or style, so it runs
under a strict Content-Security-Policy. The script (static/widget.js) talks only to /api/chat and /api/feedback
and sends nothing but the patient's message and the session id: the server keeps the conversation.
Nothing here reads or logs what a patient types.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from bot.config import Settings
from bot.errors import KnowledgeError
from bot.knowledge import load_explainers, serving
from bot.replies import reply_text

DEFAULT_BRAND = "#1f5f8b"
CRISIS_RULE = "emergency.self_harm"  # its reply gives the crisis line as the next step, not the clinic
PAGE_CACHE = {"Cache-Control": "no-cache"}  # the page carries the clinic's settings: always revalidate
ASSET_CACHE = {"Cache-Control": "public, max-age=300"}

# Card colours: (text, background, accent border). Text on background is at least 4.5:1 (WCAG AA); tests check it.
CARDS: dict[str, tuple[str, str, str]] = {
    "cb-welcome": ("#1f2937", "#e8f1fb", DEFAULT_BRAND),
    "cb-emergency": ("#5f1111", "#fdecea", "#b3261e"),
    "cb-refer": ("#1f2937", "#e8f1fb", DEFAULT_BRAND),
    "cb-unknown": ("#1f2937", "#fff7e0", "#b26a00"),
    "cb-refusal": ("#1f2937", "#f3f4f6", "#6b7280"),
    "cb-notice": ("#1f2937", "#f3f4f6", "#6b7280"),
}
CALL_BUTTON = ("#ffffff", "#b3261e")  # the "Call 911 now" link in an emergency card: text, background
TEXT, MUTED, PAGE = "#1f2937", "#4b5563", "#ffffff"  # body text, secondary text (7.5:1 on white), background


# ---- colours -------------------------------------------------------------------------------------
def _luminance(color: str) -> float:
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def brand(settings: Settings) -> tuple[str, str]:
    """The clinic's colour as #rrggbb and the text colour that reads on it: black or white, whichever is
    stronger, which is always at least 4.5:1. A colour that is not #rgb or #rrggbb falls back to the default."""
    color = settings.brand_color.strip().lower()
    if re.fullmatch(r"#[0-9a-f]{3}", color):
        color = "#" + "".join(c * 2 for c in color[1:])
    if not re.fullmatch(r"#[0-9a-f]{6}", color):
        color = DEFAULT_BRAND
    text = "#ffffff" if contrast(color, "#ffffff") >= contrast(color, "#000000") else "#000000"
    return color, text


def css(settings: Settings) -> str:
    """The widget's stylesheet: fits a 320px-wide phone, brand colour on the header and the buttons."""
    color, on_color = brand(settings)
    cards = "\n".join(
        f".{name} {{ color: {text}; background: {background}; border-left: 4px solid {accent}; }}"
        for name, (text, background, accent) in CARDS.items()
    )
    return f"""/* The patient widget (bot/ui/patient.py builds this from the clinic's settings). */
*, *::before, *::after {{ box-sizing: border-box; }}
[hidden] {{ display: none !important; }}
html, body {{ height: 100%; margin: 0; }}
body {{ font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: {TEXT}; background: {PAGE}; }}
.cb-widget {{ display: flex; flex-direction: column; height: 100vh; height: 100dvh; max-width: 760px; margin: 0 auto;
  padding: 8px clamp(8px, 3vw, 24px); gap: 8px; }}
.cb-sr {{ position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }}
#clinic-header {{ display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; padding: 10px 14px;
  border-radius: 12px; background: {color}; color: {on_color}; }}
#clinic-header img {{ max-height: 40px; max-width: 40%; height: auto; }}
#clinic-header div {{ min-width: 0; }}
#clinic-header h1 {{ margin: 0; font-size: 1.2rem; line-height: 1.3; color: inherit; }}
#clinic-header p {{ margin: 0; color: inherit; }}
#clinic-header a {{ color: inherit; font-weight: 600; text-decoration: underline; }}
#chat-main {{ display: flex; flex-direction: column; flex: 1; min-height: 0; gap: 8px; }}
#chat {{ position: relative; flex: 1; min-height: 8rem; overflow-y: auto; overflow-x: hidden; padding: 8px;
  border: 1px solid #d1d5db; border-radius: 12px; overflow-wrap: anywhere; }}
.cb-row {{ display: flex; flex-direction: column; margin: 0 0 10px; }}
.cb-from-patient {{ align-items: flex-end; }}
.cb-from-bot {{ align-items: stretch; }}
.cb-message {{ max-width: 85%; padding: 8px 12px; border-radius: 12px 12px 2px 12px; white-space: pre-wrap;
  background: {color}; color: {on_color}; }}
.cb-unsent-note {{ font-size: 0.85rem; color: {MUTED}; }}
.cb-typing {{ align-self: flex-start; padding: 6px 14px; border-radius: 12px; background: #f3f4f6; color: {TEXT};
  font-weight: 700; letter-spacing: 2px; }}
.cb-card, .cb-answer {{ padding: 10px 12px; border-radius: 8px; }}
.cb-answer {{ color: {TEXT}; background: #f9fafb; border: 1px solid #e5e7eb; }}
.cb-card * {{ color: inherit; }}
{cards}
.cb-card p, .cb-answer p {{ margin: 0 0 0.5em; }}
.cb-card p:last-child, .cb-answer p:last-child {{ margin-bottom: 0; }}
.cb-card a, .cb-answer a {{ color: inherit; font-weight: 600; text-decoration: underline; }}
.cb-emergency p:first-child {{ font-weight: 700; }}
.cb-emergency a.cb-call {{ display: inline-block; margin: 4px 0; padding: 10px 16px; border-radius: 8px;
  color: {CALL_BUTTON[0]}; background: {CALL_BUTTON[1]}; font-size: 1.1em; font-weight: 700; text-decoration: none; }}
.cb-sample {{ margin: 0 0 0.5em; padding: 0.35em 0.6em; border-left: 4px solid #8a5a00; background: #fff7e0; color: #3d2a00; font-size: 0.92em; }}
.cb-sources {{ margin-top: 0.5em; }}
.cb-sources summary {{ cursor: pointer; font-weight: 600; }}
.cb-sources ul {{ margin: 0.25em 0 0; padding-left: 1.2em; }}
.cb-feedback {{ display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-top: 4px; }}
.cb-rate {{ display: inline-flex; padding: 6px; border: 1px solid #6b7280; border-radius: 8px; background: {PAGE};
  color: {TEXT}; cursor: pointer; }}
.cb-rate svg {{ width: 20px; height: 20px; fill: currentColor; }}
.cb-down svg {{ transform: rotate(180deg); }}
.cb-rate[aria-pressed="true"] {{ background: {color}; color: {on_color}; border-color: {color}; }}
.cb-comment {{ display: flex; flex-direction: column; gap: 4px; flex-basis: 100%; }}
.cb-comment label {{ font-size: 0.9rem; font-weight: 600; }}
.cb-feedback-status {{ flex-basis: 100%; margin: 0; font-size: 0.9rem; color: {MUTED}; }}
.cb-feedback-status:empty {{ display: none; }}
#composer {{ display: flex; align-items: flex-end; gap: 8px; }}
#composer textarea {{ flex: 1; min-width: 0; }}
textarea {{ width: 100%; padding: 8px 10px; font: inherit; color: {TEXT}; background: {PAGE};
  border: 1px solid #6b7280; border-radius: 8px; resize: vertical; }}
#send, .cb-feedback-send {{ padding: 10px 16px; font: inherit; font-weight: 600; border: 1px solid {color};
  border-radius: 8px; background: {color}; color: {on_color}; cursor: pointer; }}
.cb-feedback-send {{ align-self: flex-start; padding: 6px 12px; }}
#send:hover, .cb-feedback-send:hover {{ filter: brightness(0.92); }}
#send[aria-disabled="true"] {{ cursor: progress; }}
#widget-notice {{ margin: 0; font-size: 0.85rem; color: {MUTED}; }}
#widget-notice p {{ margin: 0; }}
#widget-notice a {{ color: inherit; font-weight: 600; text-decoration: underline; }}
a:focus-visible, summary:focus-visible, button:focus-visible, textarea:focus-visible {{
  outline: 3px solid {TEXT}; outline-offset: 2px; }}
#clinic-header a:focus-visible, .cb-card a:focus-visible {{ outline-color: currentColor; }}
"""


# ---- the page's fixed parts, as escaped HTML -----------------------------------------------------------------
def tel(number: str) -> str:
    """A tel: link target: digits and a leading + only (a space breaks some dialers)."""
    kept = re.sub(r"[^0-9+]", "", number)
    return "tel:" + kept[:1] + kept[1:].replace("+", "")


def _link(href: str, label: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<a href="{html.escape(href)}"{attr}>{html.escape(label)}</a>'


def _linked(escaped: str, s: Settings) -> str:
    """Escaped text in which the clinic's number, the emergency number and the booking link can be tapped."""
    targets = {html.escape(n): tel(n) for n in (s.clinic_phone, s.emergency_number) if n.strip()}
    if s.booking_url:
        targets[html.escape(s.booking_url)] = s.booking_url
    if not targets:
        return escaped
    pattern = "|".join(re.escape(text) for text in sorted(targets, key=len, reverse=True))
    return re.sub(
        rf"(?<![\d+])(?:{pattern})(?!\d)",
        lambda m: f'<a href="{html.escape(targets[m.group()])}">{m.group()}</a>',
        escaped,
    )


def _paragraphs(text: str, s: Settings) -> str:
    """Plain text as escaped HTML paragraphs (blank lines part them, single newlines break lines)."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{_linked(html.escape(p), s).replace(chr(10), '<br>')}</p>" for p in parts)


def greeting(s: Settings) -> str:
    """The first card: general information, not medical advice, not for emergencies, with both numbers to tap."""
    return f'<div class="cb-card cb-welcome">{_paragraphs(reply_text("notice", s), s)}</div>'


def footnote(s: Settings) -> str:
    """A short line that stays under the chat when the greeting has scrolled away."""
    return _paragraphs(f"General information only, not medical advice. Emergency? Call {s.emergency_number}.", s)


def header(s: Settings) -> str:
    logo = f'<img src="{html.escape(s.logo_url)}" alt="{html.escape(s.clinic_name)}">' if s.logo_url else ""
    call = _link(tel(s.clinic_phone), s.clinic_phone)
    return (
        f'<header id="clinic-header">{logo}<div><h1>{html.escape(s.clinic_name)}</h1>'
        f"<p>Ask about treatments and aftercare. Call us: {call}</p></div></header>"
    )


def widget_config(s: Settings) -> str:
    """What the script needs to know about the clinic, as JSON safe inside a <script type="application/json">:
    the page's parser never sees a "<", so no value can end the block."""
    config = {
        "clinicName": s.clinic_name,
        "clinicPhone": s.clinic_phone,
        "emergencyNumber": s.emergency_number,
        "bookingUrl": s.booking_url,
        "openingHours": s.opening_hours,
        "maxMessageChars": s.max_message_chars,
        "crisisRule": CRISIS_RULE,
    }
    text = json.dumps(config, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def widget_page(s: Settings) -> str:
    """The whole page. Scripts and styles come from our own origin only; the greeting is here, so the page
    says what it is for and how to reach the clinic even before (or without) the script."""
    name = html.escape(s.clinic_name)
    no_script = _paragraphs(f"This chat needs JavaScript. Please call {s.clinic_name} at {s.clinic_phone}.", s)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}: treatment questions</title>
<link rel="stylesheet" href="/widget.css">
<script type="application/json" id="clinicbot-config">{widget_config(s)}</script>
<script src="/widget.js" defer></script>
</head>
<body>
<div class="cb-widget">
{header(s)}
<main id="chat-main">
<div id="chat" role="log" aria-live="polite" aria-label="Chat with {name}'s assistant">
<div class="cb-row cb-from-bot">{greeting(s)}</div>
<noscript><div class="cb-card cb-notice">{no_script}</div></noscript>
</div>
<div id="composer">
<label for="message" class="cb-sr">Your question</label>
<textarea id="message" name="message" rows="2" maxlength="{s.max_message_chars}" placeholder="Type your question…"
 autocomplete="off" autofocus></textarea>
<button type="button" id="send">Send</button>
</div>
</main>
<footer id="widget-notice">{footnote(s)}</footer>
</div>
</body>
</html>
"""


def widget_script() -> str:
    return resources.files("bot.ui").joinpath("static/widget.js").read_text("utf-8")


# ---- the routes ----------------------------------------------------------------------------------------------
def add_widget_routes(app: FastAPI, settings: Settings) -> None:
    """GET /, /widget.js and /widget.css. Everything is built here, once: the handlers only hand back strings,
    so the widget loads even while the database or the index is down."""
    page, script, sheet = widget_page(settings), widget_script(), css(settings)

    @app.get("/", include_in_schema=False)
    async def widget() -> Response:
        return HTMLResponse(page, headers=PAGE_CACHE)

    @app.get("/widget.js", include_in_schema=False)
    async def widget_js() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8", headers=ASSET_CACHE)

    @app.get("/widget.css", include_in_schema=False)
    async def widget_css() -> Response:
        return Response(sheet, media_type="text/css; charset=utf-8", headers=ASSET_CACHE)


# An SVG viewed on its own may style itself but never runs a script or loads anything.
IMAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def served_images(settings: Settings) -> dict[str, bytes]:
    """The diagrams the explainers patients may be shown name, read once: nothing else under knowledge/ is served."""
    folder = settings.knowledge_dir / "images"
    try:
        shown = serving(load_explainers(settings.knowledge_dir), settings.production)
    except KnowledgeError:
        return {}
    names = {picture.file for e in shown for picture in e.meta.images}
    return {name: (folder / name).read_bytes() for name in sorted(names) if (folder / name).is_file()}


def add_image_routes(app: FastAPI, settings: Settings) -> None:
    """GET /images/<file>.svg for the diagrams explainers link (read at start; a new one shows after a restart)."""
    images = served_images(settings)
    headers = {**ASSET_CACHE, "Content-Security-Policy": IMAGE_POLICY}

    @app.get("/images/{name}", include_in_schema=False)
    async def image(name: str) -> Response:
        if name not in images:
            return Response(status_code=404)
        return Response(images[name], media_type="image/svg+xml", headers=headers)
