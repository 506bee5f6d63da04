"""The staff console: create_app() builds the Gradio Blocks mounted at /staff/console behind the sign-in.

Shows patients' questions only redacted and trends only as counts. Every action goes through
`Curation` or `Store`, which check the role again: hiding a button is not the protection.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import gradio as gr
import yaml

from bot.auth import StaffUser
from bot.curation import Curation, Listing, add_faq_question
from bot.errors import AccessDenied, ClinicbotError, CurationError, StoreUnavailable
from bot.knowledge import FRONT_MATTER
from bot.readability import reading_grade
from bot.schemas import Picture
from bot.store import Store

LIST_HEADERS = ["id", "title", "published", "draft", "version", "review due"]
QUEUE_HEADERS = ["item", "asked", "question (redacted)"]
DOWN_HEADERS = ["item", "rated", "question (redacted)", "reply", "comment (redacted)"]
AUDIT_HEADERS = ["when", "who", "action", "count", "target"]
HISTORY_HEADERS = ["version", "approved by", "on"]
NO_CHANGES = "No draft is waiting for review."
# The default theme's orange fails WCAG AA contrast with white text; the console uses a dark blue instead.
CSS = """
.gradio-container button.primary { background: #1f4e79 !important; color: #fff !important; border-color: #1f4e79 !important; }
.gradio-container button.stop { background: #a11d1d !important; color: #fff !important; border-color: #a11d1d !important; }
.gradio-container [role=tab][aria-selected=true] { color: #1f4e79 !important; border-color: #1f4e79 !important; }
.gradio-container .table-container .label p, .gradio-container [data-testid="block-info"] { color: #374151 !important; }
.cb-signout { padding: .5rem 1rem; border-radius: 6px; border: 1px solid #6b7280; background: #fff; color: #1a1a1a; }
.cb-signout:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
"""


def _user(store: Store, request: gr.Request) -> StaffUser:
    email = getattr(request, "username", None) or ""
    user = store.user(email) if email else None
    if user is None:
        raise AccessDenied("your session has ended; sign in again at /staff")
    return StaffUser(user.email, user.role)


def _problem_text(exc: ClinicbotError) -> str:
    if isinstance(exc, CurationError) and exc.problems:
        head = str(exc).splitlines()[0]
        return f"**{html.escape(head)}**\n" + "\n".join(f"- {html.escape(p)}" for p in exc.problems)
    return f"**{html.escape(str(exc))}**"


def _when(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def preview_of(text: str) -> str:
    """The body as patients would read it, under its reading grade, with the diagrams it names."""
    body = FRONT_MATTER.sub("", text or "", count=1)
    if not body.strip():
        return ""
    grade = reading_grade(body)
    pictures = "".join(f"![{alt}](/images/{file})\n\n" for file, alt in _pictures(text))
    # after the red-flag box: the danger-sign cards sit with the signs they show, near the top
    head, box, rest = body.partition("\n## Call now if")
    after = rest.find("\n## ")
    shown = f"{head}{box}{rest[:after]}\n\n{pictures}{rest[after:]}" if box and after >= 0 else f"{body}\n\n{pictures}"
    return f"*Reading grade {grade:.1f}*\n\n{shown}"


def _pictures(text: str) -> list[tuple[str, str]]:
    """(file, alt) of the front matter's images, or none while the front matter does not parse."""
    match = FRONT_MATTER.match(text or "")
    try:
        front = yaml.safe_load(match.group(1)) if match else {}
        pictures = [Picture(**entry) for entry in (front or {}).get("images") or []]
    except (yaml.YAMLError, ValueError, TypeError, AttributeError):
        return []
    return [(picture.file, picture.alt) for picture in pictures]


def weekly_plot(store: Store, field: str) -> Any:
    """Stacked bars of exchanges per week, by kind or by explainer: counts only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = store.weekly_counts()
    weeks = sorted({w for w, _, _, _ in rows})
    groups = sorted({(kind if field == "kind" else topic or "(none)") for _, kind, topic, _ in rows})
    figure, axes = plt.subplots(figsize=(8, 3.2))
    bottom = [0] * len(weeks)
    for group in groups:
        heights = [
            sum(n for w, k, t, n in rows if w == week and (k if field == "kind" else t or "(none)") == group)
            for week in weeks
        ]
        axes.bar(weeks, heights, bottom=bottom, label=group)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_title(f"Questions per week by {'kind of reply' if field == 'kind' else 'explainer'}")
    axes.set_ylabel("questions")
    if groups:
        axes.legend(fontsize=7, ncols=2, loc="upper left", frameon=False)
    else:
        axes.text(0.5, 0.5, "no questions yet", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    plt.close(figure)
    return figure


def create_app(curation: Curation, store: Store) -> gr.Blocks:
    def listing_rows(listed: list[Listing] | None = None) -> list[list[Any]]:
        return [
            [r.id, r.title, r.published, r.draft, r.version, r.review_due + (" (due)" if r.due else "")]
            for r in (curation.listing() if listed is None else listed)
        ]

    def ids() -> list[str]:
        return [r.id for r in curation.listing()]

    def review_state(explainer_id: str) -> tuple[str, str, list[list[Any]]]:
        try:
            notes = store.review_notes(explainer_id)
        except StoreUnavailable:
            notes = []
            gr.Warning("The database cannot be reached: the review trail is not shown.")
        trail = "\n".join(
            f"- {_when(n.at)}: **{n.action}** v{n.version} by {html.escape(n.actor)}"
            + (f": {html.escape(n.comment)}" if n.comment else "")
            for n in notes
        )
        history = [
            [e.meta.version, e.meta.reviewed_by, e.meta.reviewed_on.isoformat()] for e in curation.history(explainer_id)
        ]
        return curation.diff(explainer_id) or NO_CHANGES, trail or "No review activity yet.", history

    def load(request: gr.Request):
        user = _user(store, request)
        greeting = f"Signed in as **{html.escape(user.email)}** ({user.role})."
        listed = curation.listing()
        choices = gr.update(choices=[r.id for r in listed])
        return (
            greeting,
            gr.update(visible=user.can("review")),
            gr.update(visible=user.can("audit")),
            listing_rows(listed),
            choices,
            choices,
            *insights(user, listed),
        )

    def open_explainer(explainer_id: str, request: gr.Request):
        _user(store, request)
        if not explainer_id:
            return gr.update(), "Pick an explainer first.", "", "", "", []
        try:
            text = curation.text_for_editing(explainer_id)
        except ClinicbotError as exc:
            return gr.update(), _problem_text(exc), "", "", "", []
        check = curation.check(explainer_id, text)
        return text, _check_text(check), preview_of(text), *review_state(explainer_id)

    def save(explainer_id: str, text: str, request: gr.Request):
        try:
            check = curation.save_draft(_user(store, request), explainer_id, text)
        except ClinicbotError as exc:
            return _problem_text(exc), gr.update(), listing_rows(), "", gr.update(), gr.update()
        note = "Draft saved." + ("" if check.ok else " It has problems to fix before you can submit it.")
        return f"{note}\n\n{_check_text(check)}", preview_of(text), listing_rows(), *review_state(explainer_id)

    def submit(explainer_id: str, text: str, request: gr.Request):
        user = _user(store, request)
        try:
            curation.save_draft(user, explainer_id, text)
            curation.submit(user, explainer_id)
        except ClinicbotError as exc:
            return _problem_text(exc), listing_rows(), "", gr.update(), gr.update()
        return "Submitted: a clinician will review it.", listing_rows(), *review_state(explainer_id)

    def approve(explainer_id: str, comment: str, request: gr.Request):
        try:
            warning = curation.approve(_user(store, request), explainer_id, comment)
        except ClinicbotError as exc:
            return _problem_text(exc), listing_rows(), gr.update(), gr.update(), gr.update()
        version = next((r.version for r in curation.listing() if r.id == explainer_id), 0)
        done = warning or f"Approved and published as version {version}; patients see it now."
        return done, listing_rows(), *review_state(explainer_id)

    def send_back(explainer_id: str, comment: str, request: gr.Request):
        try:
            curation.return_to_editor(_user(store, request), explainer_id, comment)
        except ClinicbotError as exc:
            return _problem_text(exc), listing_rows(), gr.update(), gr.update(), gr.update()
        return "Returned to the editor with your comment.", listing_rows(), *review_state(explainer_id)

    def retire(explainer_id: str, reason: str, request: gr.Request):
        try:
            warning = curation.retire(_user(store, request), explainer_id, reason)
        except ClinicbotError as exc:
            return _problem_text(exc), listing_rows(), gr.update(), gr.update(), gr.update()
        return (
            warning or "Retired: patients no longer get answers from it.",
            listing_rows(),
            *review_state(explainer_id),
        )

    def rollback(explainer_id: str, version: float | None, request: gr.Request):
        try:
            warning = curation.rollback(_user(store, request), explainer_id, int(version or 0))
        except ClinicbotError as exc:
            return _problem_text(exc), listing_rows(), gr.update(), gr.update(), gr.update()
        done = warning or f"Version {int(version or 0)}'s text is published again as a new version."
        return done, listing_rows(), *review_state(explainer_id)

    def create(new_id: str, new_title: str, item: str, request: gr.Request):
        user = _user(store, request)
        explainer_id = new_id.strip()
        try:
            text = curation.create(user, explainer_id, new_title, _question_of(item))
        except ClinicbotError as exc:
            return _problem_text(exc), gr.update(), gr.update(), listing_rows(), gr.update(), *insights(user)
        if item:
            store.close_queue_item(item, actor=user.email, action="drafted")
        check = curation.check(explainer_id, text)
        message = f"Draft '{explainer_id}' created: fill it in, then submit it.\n\n{_check_text(check)}"
        picked = gr.update(choices=ids(), value=explainer_id)
        return message, text, picked, listing_rows(), gr.Tabs(selected="explainers"), *insights(user)

    def create_blank(new_id: str, new_title: str, request: gr.Request):
        return create(new_id, new_title, "", request)

    def extend(explainer_id: str, item: str, request: gr.Request):
        user = _user(store, request)
        question = _question_of(item)
        if not (explainer_id and question):
            gr.Warning("Pick a question in one of the lists and the explainer to extend.")
            return gr.update(), gr.update(), gr.update(), listing_rows(), gr.update(), *insights(user)
        try:
            text = add_faq_question(curation.text_for_editing(explainer_id), question)
            check = curation.save_draft(user, explainer_id, text)
        except ClinicbotError as exc:
            gr.Warning(str(exc))
            return gr.update(), gr.update(), gr.update(), listing_rows(), gr.update(), *insights(user)
        store.close_queue_item(item, actor=user.email, action="extended")
        return (
            f"The question was added to the draft of '{explainer_id}': answer it, then submit.\n\n{_check_text(check)}",
            text,
            gr.update(value=explainer_id),
            listing_rows(),
            gr.Tabs(selected="explainers"),
            *insights(user),
        )

    def dismiss(item: str, request: gr.Request):
        user = _user(store, request)
        if item:
            store.close_queue_item(item, actor=user.email, action="dismissed")
        return insights(user)

    def _question_of(item: str) -> str:
        exchange = store.exchange(item) if item else None
        return exchange.question_redacted if exchange else ""

    def insights(user: StaffUser, listed: list[Listing] | None = None) -> tuple[Any, ...]:
        queue = [[e.id, _when(e.created_at), e.question_redacted] for e in store.unanswered()]
        down = [
            [e.id, _when(f.created_at), e.question_redacted, e.reply_text[:160], f.comment_redacted]
            for e, f in store.thumbed_down()
        ]
        due = [r for r in (curation.listing() if listed is None else listed) if r.due]
        due_text = (
            "\n".join(f"- **{r.id}**: review due {r.review_due}" for r in due) or "No reviews due in the next 30 days."
        )
        audit = (
            [[_when(a.at), a.actor, a.action, a.count, a.target] for a in store.audit_log()]
            if user.can("audit")
            else []
        )
        return queue, down, due_text, weekly_plot(store, "topic"), weekly_plot(store, "kind"), audit

    def pick_item(event: gr.SelectData) -> str:
        row = event.row_value or []
        return str(row[0]) if row else ""

    with gr.Blocks(title="Clinic assistant: staff console") as app:
        with gr.Row():
            greeting = gr.Markdown(elem_id="greeting")
            gr.HTML(
                '<form method="post" action="/staff/logout" style="text-align:right">'
                '<button type="submit" id="sign-out" class="cb-signout">Sign out</button></form>'
            )
        with gr.Tabs() as tabs:
            with gr.Tab("Explainers", id="explainers", elem_id="tab-explainers"):
                table = gr.Dataframe(headers=LIST_HEADERS, interactive=False, label="Explainers", elem_id="explainers")
                with gr.Row():
                    picker = gr.Dropdown(label="Explainer", choices=[], allow_custom_value=True, elem_id="pick")
                    open_button = gr.Button("Open", elem_id="open")
                with gr.Accordion("New explainer", open=False):
                    new_id = gr.Textbox(label="New id (lowercase words joined by hyphens)", elem_id="new-id")
                    new_title = gr.Textbox(label="Title", elem_id="new-title")
                    create_button = gr.Button("Create draft", elem_id="create")
                editor = gr.Textbox(
                    label="Explainer text (Markdown with front matter)", lines=24, max_lines=60, elem_id="editor"
                )
                with gr.Row():
                    save_button = gr.Button("Save draft", elem_id="save")
                    submit_button = gr.Button("Submit for review", variant="primary", elem_id="submit")
                status = gr.Markdown(elem_id="status")
                with gr.Accordion("Preview", open=False):
                    preview = gr.Markdown(elem_id="preview")
                with gr.Accordion("Review trail", open=True):
                    trail = gr.Markdown(elem_id="trail")
                with gr.Group(visible=False) as review_group:
                    gr.Markdown("### Clinician review")
                    diff = gr.Textbox(
                        label="Changes against the approved version (- removed, + added)",
                        value=NO_CHANGES,
                        interactive=False,
                        lines=12,
                        max_lines=40,
                        elem_id="diff",
                    )
                    comment = gr.Textbox(label="Comment for the editor (required to return)", elem_id="review-comment")
                    with gr.Row():
                        approve_button = gr.Button("Approve and publish", variant="primary", elem_id="approve")
                        return_button = gr.Button("Return to editor", elem_id="return")
                    history = gr.Dataframe(
                        headers=HISTORY_HEADERS, interactive=False, label="History", elem_id="history"
                    )
                    with gr.Row():
                        version = gr.Number(label="Version to roll back to", precision=0, elem_id="rollback-version")
                        rollback_button = gr.Button("Roll back", elem_id="rollback")
                    with gr.Row():
                        reason = gr.Textbox(label="Why retire it", elem_id="retire-reason")
                        retire_button = gr.Button("Retire", variant="stop", elem_id="retire")
            with gr.Tab("Insights", elem_id="tab-insights"):
                gr.Markdown(
                    "Patients' questions are shown redacted. Pick one, then draft a new explainer or extend one."
                )
                queue = gr.Dataframe(
                    headers=QUEUE_HEADERS, interactive=False, label="Unanswered questions", elem_id="queue"
                )
                down = gr.Dataframe(
                    headers=DOWN_HEADERS, interactive=False, label="Replies rated unhelpful", elem_id="down"
                )
                item = gr.Textbox(label="Picked item", interactive=False, elem_id="item")
                with gr.Row():
                    target = gr.Dropdown(label="Explainer to extend", choices=[], elem_id="extend-target")
                    extend_button = gr.Button("Add the question to its FAQ", elem_id="extend")
                with gr.Row():
                    draft_id = gr.Textbox(
                        label="New explainer id (lowercase words joined by hyphens)", elem_id="draft-id"
                    )
                    draft_title = gr.Textbox(label="New explainer title", elem_id="draft-title")
                    draft_button = gr.Button("Draft a new explainer from it", elem_id="draft-new")
                dismiss_button = gr.Button("Dismiss the question", elem_id="dismiss")
                due = gr.Markdown(elem_id="due")
                by_topic = gr.Plot(label="Per explainer per week")
                by_kind = gr.Plot(label="Per kind per week")
            with gr.Tab("Audit log", visible=False, elem_id="tab-audit") as audit_tab:
                audit = gr.Dataframe(
                    headers=AUDIT_HEADERS, interactive=False, label="Every staff action", elem_id="audit"
                )

        insight_outputs = [queue, down, due, by_topic, by_kind, audit]
        review_outputs = [diff, trail, history]
        app.load(load, None, [greeting, review_group, audit_tab, table, picker, target, *insight_outputs])
        open_button.click(open_explainer, [picker], [editor, status, preview, *review_outputs])
        picker.input(open_explainer, [picker], [editor, status, preview, *review_outputs])
        editor.change(preview_of, [editor], [preview], show_progress="hidden")
        save_button.click(save, [picker, editor], [status, preview, table, *review_outputs])
        submit_button.click(submit, [picker, editor], [status, table, *review_outputs])
        approve_button.click(approve, [picker, comment], [status, table, *review_outputs])
        return_button.click(send_back, [picker, comment], [status, table, *review_outputs])
        retire_button.click(retire, [picker, reason], [status, table, *review_outputs])
        rollback_button.click(rollback, [picker, version], [status, table, *review_outputs])
        to_editor = [status, editor, picker, table, tabs, *insight_outputs]
        create_button.click(create_blank, [new_id, new_title], to_editor)
        draft_button.click(create, [draft_id, draft_title, item], to_editor)
        extend_button.click(extend, [target, item], to_editor)
        dismiss_button.click(dismiss, [item], insight_outputs)
        queue.select(pick_item, None, [item])
        down.select(pick_item, None, [item])
    return app


def _check_text(check: Any) -> str:
    grade = f"Reading grade: **{check.grade:.1f}** (aim for 6 to 8)." if check.grade is not None else ""
    if check.ok:
        return f"{grade} No problems found."
    return grade + "\n\nTo fix:\n" + "\n".join(f"- {html.escape(p)}" for p in check.problems)
