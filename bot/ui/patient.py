"""The patient chat widget: create_app() builds the Gradio Blocks; the web module mounts it with css() and HEAD.

Replies are shown as HTML cards, and every piece of text is escaped before it goes into that HTML.
Nothing here logs what a patient types, neither a message nor a feedback comment.
"""

from __future__ import annotations

import html
import re
from typing import Any

import gradio as gr

from bot.chat import Pipeline
from bot.config import Settings
from bot.errors import ClinicbotError, InvalidMessage
from bot.ratelimit import RateLimiter
from bot.replies import reply_text
from bot.schemas import Reply, Source

RATE_LIMITED = "You're sending messages very quickly. Please wait a minute and try again."
DEFAULT_BRAND = "#1f5f8b"

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

# The widget in an iframe (see embed.py): Escape inside it asks the host page to close the panel.
HEAD = """<script>
document.addEventListener("keydown", function (event) {
  if (event.key === "Escape" && window.parent !== window) window.parent.postMessage("clinicbot:close", "*");
});
</script>"""


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
        f"#chat .{name} {{ color: {text}; background: {background}; border-left: 4px solid {accent}; }}"
        for name, (text, background, accent) in CARDS.items()
    )
    return f"""
.gradio-container {{ max-width: 760px !important; margin: 0 auto !important; }}
.gradio-container > .app {{ padding-left: clamp(8px, 4vw, 32px) !important; padding-right: clamp(8px, 4vw, 32px) !important; }}
#clinic-header {{ display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; padding: 12px 16px;
  border-radius: 12px; background: {color}; color: {on_color}; }}
#clinic-header img {{ max-height: 40px; max-width: 40%; height: auto; }}
#clinic-header h1 {{ margin: 0; font-size: 1.2rem; line-height: 1.3; color: inherit; }}
#clinic-header p {{ margin: 0; color: inherit; }}
#clinic-header a {{ color: inherit; font-weight: 600; text-decoration: underline; }}
#send, #feedback-send {{ --button-primary-background-fill: {color}; --button-primary-background-fill-hover: {color};
  --button-primary-border-color: {color}; --button-primary-border-color-hover: {color};
  --button-primary-text-color: {on_color}; --button-primary-text-color-hover: {on_color};
  background: {color}; color: {on_color}; border-color: {color}; }}
#feedback-comment [data-testid="block-info"] {{ color: var(--body-text-color); }}  /* the theme's is too pale */
#send:hover, #feedback-send:hover {{ filter: brightness(0.92); }}
#widget-notice {{ font-size: 0.85rem; }}
#widget-notice p {{ margin: 0; }}
#widget-notice a {{ color: inherit; font-weight: 600; text-decoration: underline; }}
#chat .message-wrap .prose.chatbot.md {{ opacity: 1; }}  /* Gradio dims messages to 0.8, below AA contrast */
#chat .cb-card {{ padding: 10px 12px; border-radius: 8px; }}
#chat .cb-card * {{ color: inherit; }}  /* the card's colour, also under a dark theme */
{cards}
#chat .cb-card p, #chat .cb-answer p {{ margin: 0 0 0.5em; }}
#chat .cb-card p:last-child, #chat .cb-answer p:last-child {{ margin-bottom: 0; }}
#chat .cb-card a {{ color: inherit; font-weight: 600; text-decoration: underline; }}
#chat .cb-emergency p:first-child {{ font-weight: 700; }}
#chat .cb-emergency a.cb-call {{ display: inline-block; margin: 4px 0; padding: 10px 16px; border-radius: 8px;
  color: {CALL_BUTTON[0]}; background: {CALL_BUTTON[1]}; font-size: 1.1em; font-weight: 700; text-decoration: none; }}
#chat .cb-sources {{ margin-top: 0.5em; }}
#chat .cb-sources summary {{ cursor: pointer; font-weight: 600; }}
#chat .cb-sources ul {{ margin: 0.25em 0 0; padding-left: 1.2em; }}
#chat a:focus-visible, #chat summary:focus-visible {{ outline: 3px solid currentColor; outline-offset: 2px; }}
"""


# ---- replies as HTML -----------------------------------------------------------------------------
def tel(number: str) -> str:
    """A tel: link target: digits and a leading + only (a space breaks some dialers)."""
    return "tel:" + re.sub(r"[^\d+]", "", number)


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
    """Plain text as escaped HTML paragraphs, all on one line: a blank line would end the HTML block
    in the Chatbot's Markdown pass and show the rest as text."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{_linked(html.escape(p), s).replace(chr(10), '<br>')}</p>" for p in parts)


def _card(name: str, body: str, role: str = "") -> str:
    attr = f' role="{role}"' if role else ""
    return f'<div class="cb-card {name}"{attr}>{body}</div>'


def _sources(sources: list[Source]) -> str:
    items = "".join(
        f"<li><strong>{html.escape(src.title)}</strong> — {html.escape(src.section)} "
        f"<small>(version {src.version}, last reviewed {html.escape(src.reviewed_on)})</small></li>"
        for src in sources
    )
    return f'<details class="cb-sources"><summary>Sources ({len(sources)})</summary><ul>{items}</ul></details>'


def render(reply: Reply, pipeline: Pipeline) -> str:
    """The reply as one line of HTML: a card for each fixed kind, an answer with its sources to expand."""
    s = pipeline.settings
    text = _paragraphs(reply.text, s)
    if reply.kind == "emergency":
        call = _link(tel(s.emergency_number), f"Call {s.emergency_number} now", "cb-call")
        clinic = f"<p>Then call {html.escape(s.clinic_name)}: {_link(tel(s.clinic_phone), s.clinic_phone)}</p>"
        if reply.rule == "emergency.self_harm":  # the crisis line in the text is the next step, not the clinic
            clinic = ""
        return _card("cb-emergency", f"{text}<p>{call}</p>{clinic}", role="alert")
    if reply.kind == "refer":
        return _card("cb-refer", f"{text}<p>{_link(s.booking_url, 'Book a visit', 'cb-book')}</p>")
    if reply.kind == "unknown":
        phone = _link(tel(s.clinic_phone), s.clinic_phone)
        return _card("cb-unknown", f"{text}<p>Ask the clinic: call {phone} ({html.escape(s.opening_hours)})</p>")
    if reply.kind == "out_of_scope":
        return _card("cb-refusal", text)
    return f'<div class="cb-answer">{text}{_sources(reply.sources) if reply.sources else ""}</div>'


def notice(text: str, s: Settings) -> str:
    """A message from the widget itself (rate limit, a message too long, the index down)."""
    return _card("cb-notice", _paragraphs(text, s), role="status")


def greeting(s: Settings) -> str:
    return _card("cb-welcome", _paragraphs(reply_text("notice", s), s))


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


# ---- the app -------------------------------------------------------------------------------------
def create_app(pipeline: Pipeline, limiter: RateLimiter) -> gr.Blocks:
    s = pipeline.settings

    def respond(
        message: str, history: list[dict[str, Any]], session: str | None, replies: dict[int, str], request: gr.Request
    ):
        history = list(history or [])
        client = request.client.host if request and request.client else "unknown"
        history.append({"role": "user", "content": message})  # shown through Gradio's sanitizer, like any chat text
        if not limiter.allow(f"widget:{client}"):
            history.append({"role": "assistant", "content": notice(RATE_LIMITED, s)})
            return "", history, session, replies
        try:
            reply = pipeline.ask(message, session=session)
        except InvalidMessage as exc:
            history.append({"role": "assistant", "content": notice(str(exc), s)})
            return "", history, session, replies
        except ClinicbotError:
            history.append({"role": "assistant", "content": notice(reply_text("index_unavailable", s), s)})
            return "", history, session, replies
        history.append({"role": "assistant", "content": render(reply, pipeline)})
        replies = {**replies, len(history) - 1: reply.reply_id}  # chat position → reply id, for thumbs up/down
        return "", history, reply.session, replies

    def rate(replies: dict[int, str], like: gr.LikeData):
        """Store a thumbs up/down and offer the comment box. Outputs: rated reply, comment form, status."""
        index = like.index if isinstance(like.index, int) else like.index[0]
        reply_id = replies.get(index)
        if reply_id is None:  # the greeting or a message that was not a stored reply
            return gr.skip(), gr.skip(), gr.skip()
        if not isinstance(like.liked, bool):  # the patient took the rating back: "" is not a thumbs down
            return None, gr.update(visible=False), ""
        try:
            pipeline.feedback(reply_id, like.liked)
        except ClinicbotError:
            return None, gr.update(visible=False), "Thanks! Your rating could not be saved right now."
        return {"reply_id": reply_id, "helpful": like.liked}, gr.update(visible=True), "Thanks for your rating."

    def send_feedback(comment: str, rated: dict[str, Any] | None):
        """Store the comment against the last rated reply. Outputs: comment box, comment form, status."""
        if not rated:
            return gr.skip(), gr.update(visible=False), gr.skip()
        if not (comment or "").strip():
            return gr.skip(), gr.skip(), "Type a comment first, or just carry on chatting."
        try:
            pipeline.feedback(rated["reply_id"], rated["helpful"], comment)  # the pipeline redacts it
        except InvalidMessage as exc:
            return gr.skip(), gr.skip(), str(exc)
        except ClinicbotError:
            return gr.skip(), gr.skip(), "Your comment could not be saved right now. Please try again later."
        return "", gr.update(visible=False), "Thank you! The clinic team reads every comment."

    # analytics off: Gradio would otherwise call api.gradio.app from the clinic's server
    with gr.Blocks(title=f"{s.clinic_name} — treatment questions", analytics_enabled=False) as app:
        gr.HTML(header(s), apply_default_css=False)
        chat = gr.Chatbot(
            value=[{"role": "assistant", "content": greeting(s)}],
            label=f"Chat with {s.clinic_name}'s assistant",
            show_label=False,
            height="min(65vh, 560px)",
            elem_id="chat",
            feedback_options=("Like", "Dislike"),
            buttons=["copy", "copy_all"],  # no "share": it posts to Hugging Face, and its button has no name
            latex_delimiters=[],  # "$300 to $600" is a price, not maths
        )
        session = gr.State(None)
        replies = gr.State({})
        rated = gr.State(None)
        with gr.Row(equal_height=True):
            box = gr.Textbox(
                label="Your question",
                placeholder="Type your question…",
                show_label=False,
                scale=5,
                min_width=120,
                elem_id="message",
                max_length=s.max_message_chars,
                autofocus=True,
            )
            send = gr.Button("Send", variant="primary", scale=1, min_width=72, elem_id="send")
        with gr.Column(visible=False, elem_id="feedback-form") as form:
            comment = gr.Textbox(
                label="Tell us more (optional)", elem_id="feedback-comment", max_length=s.max_message_chars
            )
            send_comment = gr.Button("Send feedback", variant="primary", size="sm", elem_id="feedback-send")
        status = gr.Markdown(elem_id="feedback-status")
        gr.HTML(footnote(s), elem_id="widget-notice", apply_default_css=False)
        box.submit(respond, [box, chat, session, replies], [box, chat, session, replies])
        send.click(respond, [box, chat, session, replies], [box, chat, session, replies])
        chat.like(rate, [replies], [rated, form, status])
        chat.clear(lambda: ({}, None, gr.update(visible=False)), None, [replies, rated, form])  # positions restart
        comment.submit(send_feedback, [comment, rated], [comment, form, status])
        send_comment.click(send_feedback, [comment, rated], [comment, form, status])
    return app
