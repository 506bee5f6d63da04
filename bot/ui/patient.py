"""The patient chat widget: create_app() builds the Gradio Blocks; the web module mounts it."""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from bot.chat import Pipeline
from bot.errors import ClinicbotError, InvalidMessage
from bot.ratelimit import RateLimiter
from bot.replies import reply_text
from bot.schemas import Reply

RATE_LIMITED = "You're sending messages very quickly. Please wait a minute and try again."


def tel(number: str) -> str:
    """A tel: link target: digits and a leading + only (a space breaks the Markdown link)."""
    return "tel:" + re.sub(r"[^\d+]", "", number)


def render(reply: Reply, pipeline: Pipeline) -> str:
    """The reply as Markdown: emergency first and alone, answers with their sources."""
    s = pipeline.settings
    if reply.kind == "emergency":
        return f"**{reply.text}**\n\n[Call {s.emergency_number} now]({tel(s.emergency_number)})"
    if reply.kind == "refer":
        return f"{reply.text}\n\n[Book a visit]({s.booking_url})"
    if reply.kind == "answer" and reply.sources:
        cited = "\n".join(
            f"- {src.title} — {src.section} (version {src.version}, reviewed {src.reviewed_on})"
            for src in reply.sources
        )
        return f"{reply.text}\n\n**Source:**\n{cited}"
    return reply.text


def create_app(pipeline: Pipeline, limiter: RateLimiter) -> gr.Blocks:
    s = pipeline.settings
    notice = reply_text("notice", s)

    def respond(
        message: str, history: list[dict[str, Any]], session: str | None, replies: dict[int, str], request: gr.Request
    ):
        history = list(history or [])
        client = request.client.host if request and request.client else "unknown"
        history.append({"role": "user", "content": message})
        if not limiter.allow(f"widget:{client}"):
            history.append({"role": "assistant", "content": RATE_LIMITED})
            return "", history, session, replies
        try:
            reply = pipeline.ask(message, session=session)
        except InvalidMessage as exc:
            history.append({"role": "assistant", "content": str(exc)})
            return "", history, session, replies
        except ClinicbotError:
            history.append({"role": "assistant", "content": reply_text("index_unavailable", s)})
            return "", history, session, replies
        history.append({"role": "assistant", "content": render(reply, pipeline)})
        replies = {**replies, len(history) - 1: reply.reply_id}  # chat position → reply id, for thumbs up/down
        return "", history, reply.session, replies

    def rate(replies: dict[int, str], like: gr.LikeData) -> None:
        index = like.index if isinstance(like.index, int) else like.index[0]
        reply_id = replies.get(index)
        if reply_id is None:  # the greeting or a message that was not a stored reply
            return
        try:
            pipeline.feedback(reply_id, bool(like.liked))
        except ClinicbotError:
            gr.Warning("Thanks! Your rating could not be saved right now.")

    with gr.Blocks(title=f"{s.clinic_name} — treatment questions") as app:
        gr.Markdown(
            f"## {s.clinic_name}\nAsk about treatments and aftercare. Call us: [{s.clinic_phone}]({tel(s.clinic_phone)})"
        )
        chat = gr.Chatbot(
            value=[{"role": "assistant", "content": notice}],
            label="Chat with the clinic's assistant",
            height=460,
            elem_id="chat",
            feedback_options=("Like", "Dislike"),
        )
        session = gr.State(None)
        replies = gr.State({})
        with gr.Row():
            box = gr.Textbox(
                placeholder="Type your question…",
                show_label=False,
                scale=5,
                elem_id="message",
                max_length=s.max_message_chars,
                autofocus=True,
            )
            send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
        gr.Markdown(f"<small>{notice}</small>")
        box.submit(respond, [box, chat, session, replies], [box, chat, session, replies])
        send.click(respond, [box, chat, session, replies], [box, chat, session, replies])
        chat.like(rate, [replies], None)
    return app
