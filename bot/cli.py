"""The `clinicbot` command: ingest, ask, redact, serve, eval, bench, purge, forget, export, user add/list.

Configures logging (library modules never do) and never imports the web stack unless serving.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.config import get_settings
from bot.errors import ClinicbotError, InvalidMessage, KnowledgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Patient-education chatbot for aesthetic clinics.")


def _setup_logging(verbose: bool = False) -> None:
    from bot.logfilter import install

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install()


def _fail(error: ClinicbotError) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)


def _lines(stream: Any) -> Iterator[tuple[Any, str | None, dict[str, Any] | None]]:
    """(id, error, object) for each non-empty stdin line; undecodable or non-JSON lines become errors."""
    for raw in stream.buffer if hasattr(stream, "buffer") else stream:
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield None, "the line is not valid UTF-8", None
                continue
        else:
            line = raw
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            yield None, "the line is not valid JSON; send one JSON object a line", None
            continue
        if not isinstance(obj, dict):
            yield None, "the line must be a JSON object", None
            continue
        yield obj.get("id"), None, obj


def _store() -> Any:
    from bot.store import Store

    settings = get_settings()
    return Store(settings.database_url_resolved, settings.encryption_key)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@app.command()
def ingest(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Validate the explainers and sync the search index; print what changed."""
    _setup_logging(verbose)
    from bot.ingest import ingest as run_ingest

    settings = get_settings()
    try:
        report = run_ingest(settings, progress=lambda m: typer.echo(m, err=True))
    except KnowledgeError as error:
        for problem in error.problems:
            typer.echo(problem, err=True)
        typer.echo("ingest stopped: fix the files above; the previous index is still serving", err=True)
        raise typer.Exit(1) from None
    except ClinicbotError as error:
        _fail(error)
        return
    if not report.changed:
        typer.echo(f"index up to date ({report.unchanged} chunks unchanged)")
        return
    typer.echo(
        f"index generation {report.generation}: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.removed)} removed, {report.unchanged} unchanged, {report.embedded} rows embedded"
    )
    for label, ids in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
        for chunk_id in ids:
            typer.echo(f"  {label}: {chunk_id}")


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="the question; omit with --jsonl")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="batch: JSON objects on stdin, one a line")] = False,
    session: Annotated[str | None, typer.Option(help="continue a conversation")] = None,
) -> None:
    """Answer one question, or a batch with --jsonl."""
    _setup_logging()
    from bot.chat import Pipeline

    try:
        pipeline = Pipeline.build(get_settings())
    except ClinicbotError as error:
        _fail(error)
        return
    if not jsonl:
        if question is None:
            typer.echo("error: give a question, or use --jsonl to read a batch from stdin", err=True)
            raise typer.Exit(2)
        try:
            reply = pipeline.ask(question, session=session)
        except ClinicbotError as error:
            _fail(error)
            return
        typer.echo(f"[{reply.kind}] {reply.text}")
        for source in reply.sources:
            typer.echo(
                f"  source: {source.title} — {source.section} (v{source.version}, reviewed {source.reviewed_on})"
            )
        return
    for request_id, problem, obj in _lines(sys.stdin):
        if problem or obj is None:
            _emit({"id": request_id, "error": problem})
            continue
        if "question" not in obj:
            _emit({"id": request_id, "error": "the object has no 'question' field"})
            continue
        try:
            reply = pipeline.ask(obj["question"], session=obj.get("session"))
        except (InvalidMessage, ClinicbotError) as exc:
            _emit({"id": request_id, "error": str(exc)})
            continue
        out = reply.public(request_id)
        out["session"] = reply.session
        out["reply_id"] = reply.reply_id
        _emit(out)


@app.command()
def redact(jsonl: Annotated[bool, typer.Option("--jsonl", help="batch: objects with 'text' on stdin")] = False) -> None:
    """Redact stdin: plain text to redacted text, or JSON lines with --jsonl."""
    _setup_logging()
    from bot.chat import validate
    from bot.redact import Redactor

    redactor = Redactor()
    settings = get_settings()
    if not jsonl:
        try:
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            typer.echo("error: the input is not valid UTF-8 text", err=True)
            raise typer.Exit(1) from None
        typer.echo(redactor.redact(text).text)
        return
    for request_id, problem, obj in _lines(sys.stdin):
        if problem or obj is None:
            _emit({"id": request_id, "error": problem})
            continue
        if "text" not in obj:
            _emit({"id": request_id, "error": "the object has no 'text' field"})
            continue
        try:
            text = validate(obj["text"], settings.max_message_chars * 5)
        except InvalidMessage as exc:
            _emit({"id": request_id, "error": str(exc)})
            continue
        result = redactor.redact(text)
        _emit({"id": request_id, "redacted": result.text, "entities": [e.public() for e in result.entities]})


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 7860,
    workers: Annotated[int, typer.Option(help="app processes sharing the stores")] = 1,
) -> None:
    """Serve the patient widget at /, the staff console at /staff and health at /healthz."""
    import uvicorn

    from bot.logfilter import server_log_config

    settings = get_settings()
    problem = settings.secret_problem()
    if settings.production and problem:
        typer.echo(f"error: {problem}; set a long random value (`openssl rand -hex 32`) before production", err=True)
        raise typer.Exit(1)
    uvicorn.run(
        "bot.web:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=server_log_config(),
        proxy_headers=False,  # the app reads X-Forwarded-For itself, from CLINICBOT_TRUSTED_PROXIES only
        server_header=False,
        timeout_graceful_shutdown=5,
    )


@app.command()
def purge(actor: Annotated[str, typer.Option(help="who runs it, for the audit log")] = "cli") -> None:
    """Delete conversations older than CLINICBOT_RETENTION_DAYS."""
    _setup_logging()

    settings = get_settings()
    count = _store().purge(settings.retention_days, actor=actor)
    typer.echo(f"purged {count} exchanges older than {settings.retention_days} days")


@app.command()
def forget(
    session: Annotated[str, typer.Option(help="the conversation's session id")],
    actor: Annotated[str, typer.Option(help="who runs it, for the audit log")] = "cli",
) -> None:
    """Delete every record of one conversation and report how many."""
    _setup_logging()

    count = _store().forget(session, actor=actor)
    typer.echo(f"deleted {count} exchanges of that session")


@app.command()
def export(
    session: Annotated[str, typer.Option(help="the conversation's session id")],
    actor: Annotated[str, typer.Option(help="who runs it, for the audit log")] = "cli",
) -> None:
    """Print, as JSON, what is stored about one conversation (redacted text, times, feedback)."""
    _setup_logging()

    typer.echo(json.dumps(_store().export(session, actor=actor), indent=2))


db_app = typer.Typer(no_args_is_help=True, help="The database schema (Alembic migrations).")
app.add_typer(db_app, name="db")


@db_app.command("keygen")
def db_keygen() -> None:
    """Print a new key for CLINICBOT_ENCRYPTION_KEY (conversation text encrypted at rest). Keep it safe:
    text sealed with a lost key cannot be read."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database at CLINICBOT_DATABASE_URL to the newest schema (safe to run from several processes)."""
    _setup_logging()

    try:
        revision = _store().upgrade()
    except ClinicbotError as exc:
        _fail(exc)
    typer.echo(f"database schema at revision {revision}")


user_app = typer.Typer(no_args_is_help=True, help="Staff accounts for the console at /staff.")
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="the staff member's email, their sign-in name")],
    role: Annotated[str, typer.Option(help="editor (drafts), clinician (reviews and approves) or admin")] = "editor",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    actor: Annotated[str, typer.Option(help="who runs it, for the audit log")] = "cli",
) -> None:
    """Add a staff member (or reset an existing one's password and role; their open sessions end)."""
    _setup_logging()
    from bot.auth import Auth

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        Auth(_store()).add_user(email, password, role, actor=actor)
    except ClinicbotError as exc:
        _fail(exc)
    typer.echo(f"{email.strip().lower()} can now sign in at /staff as {role}")


@user_app.command("list")
def user_list() -> None:
    """List staff accounts and their roles."""
    _setup_logging()

    for user in _store().users():
        typer.echo(f"{user.email}\t{user.role}\tsince {user.created_at:%Y-%m-%d}")


@app.command(name="eval")
def evaluate(
    questions: Annotated[Path, typer.Option(help="questions JSONL")] = Path("evals/questions.jsonl"),
    pii: Annotated[Path, typer.Option(help="PII cases JSONL")] = Path("evals/pii.jsonl"),
    out: Annotated[Path, typer.Option(help="report folder")] = Path("evals/report"),
    check: Annotated[bool, typer.Option("--check", help="exit non-zero when a target is missed")] = False,
    baseline: Annotated[bool, typer.Option(help="also score Presidio's default configuration")] = True,
) -> None:
    """Run the evaluation sets through the real pipeline and write the report."""
    _setup_logging()
    from bot.evaluate import run_eval

    try:
        missed = run_eval(get_settings(), questions, pii, out, baseline=baseline)
    except ClinicbotError as exc:  # no index yet, Chroma unreachable: one line, not a traceback
        _fail(exc)
    for line in missed:
        typer.echo(f"target missed: {line}", err=True)
    typer.echo(f"report written to {out}/report.md")
    if check and missed:
        raise typer.Exit(1)


@app.command()
def bench(
    questions: Annotated[Path, typer.Option(help="questions JSONL")] = Path("evals/questions.jsonl"),
    limit: Annotated[int, typer.Option(help="messages to time")] = 300,
) -> None:
    """Print cold start, ingest time and per-message latency by step."""
    _setup_logging()
    from bot.bench import run_bench

    try:
        typer.echo(run_bench(get_settings(), questions, limit))
    except ClinicbotError as exc:
        _fail(exc)


def main() -> None:
    app()
