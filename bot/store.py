"""The record of conversations: the only module that imports SQLAlchemy.

Stores redacted text only: every text column is written from `Redaction.text` or from the bot's own
reply. Holds exchanges, feedback, the audit log and staff users.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from bot.errors import ConfigError, RecordRejected, StoreUnavailable

log = logging.getLogger(__name__)


SEALED = "sealed1:"  # prefix of a value encrypted at rest; values without it are plain (written before a key was set)
_cipher: Fernet | None = None  # one key per process, from CLINICBOT_ENCRYPTION_KEY


class SealedText(TypeDecorator[str]):
    """Conversation text, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256) when a key is configured."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if not value or _cipher is None:
            return value
        return SEALED + _cipher.encrypt(value.encode()).decode()

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if not value or not value.startswith(SEALED):
            return value
        if _cipher is None:
            return "[encrypted: set CLINICBOT_ENCRYPTION_KEY to read it]"
        try:
            return _cipher.decrypt(value[len(SEALED) :].encode()).decode()
        except InvalidToken:
            return "[encrypted with a different key]"


def use_encryption_key(key: str) -> None:
    """Seal conversation text written from now on with this key (empty: store it as plain text)."""
    global _cipher
    try:
        _cipher = Fernet(key.encode()) if key else None
    except (ValueError, TypeError):
        raise ConfigError("CLINICBOT_ENCRYPTION_KEY is not a Fernet key; make one with `clinicbot db keygen`") from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class Exchange(Base):
    __tablename__ = "exchanges"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, index=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    rule: Mapped[str] = mapped_column(String(64), default="")
    question_redacted: Mapped[str] = mapped_column(SealedText)
    reply_text: Mapped[str] = mapped_column(SealedText)
    sources_json: Mapped[str] = mapped_column(Text, default="[]")
    topic: Mapped[str] = mapped_column(String(64), default="", index=True)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    queue_status: Mapped[str] = mapped_column(String(16), default="")  # "open" for unanswered questions


class Feedback(Base):
    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reply_id: Mapped[str] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment_redacted: Mapped[str] = mapped_column(SealedText, default="")


class Audit(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=0)
    target: Mapped[str] = mapped_column(String(256), default="")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(256), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class StaffSession(Base):
    """A signed-in staff member: the cookie holds a random token, the database only its SHA-256."""

    __tablename__ = "staff_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class ReviewNote(Base):
    """The review trail of an explainer: submitted, returned (with the clinician's comment), approved, retired."""

    __tablename__ = "review_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    explainer_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=0)
    comment: Mapped[str] = mapped_column(Text, default="")


class Counter(Base):
    """A fixed-window counter shared by every process: rate limits and sign-in throttling.

    The key names the limit, a hash of who is counted (never an address or an email in clear) and the window.
    """

    __tablename__ = "counters"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


def make_engine(url: str, timeouts: Timeouts | None = None) -> Engine:
    timeouts = timeouts or Timeouts()
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": timeouts.statement_ms / 1000},
            pool_timeout=timeouts.pool_s,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cursor = conn.cursor()
            # WAL lets the console, the CLI and a second worker read while one writes; the busy timeout makes a
            # writer wait for another's lock instead of failing; FULL syncs each commit, so a reply said to be
            # stored survives a power cut as well as a crash.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(timeouts.statement_ms)}")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        # A server that is down fails the connect in seconds; one that is up but stuck on a statement cancels it.
        # (A frozen server answers neither: the bulkheads' deadlines cover that case.)
        connect_args = {
            "connect_timeout": timeouts.connect_s,
            "options": f"-c statement_timeout={int(timeouts.statement_ms)} -c lock_timeout={int(timeouts.statement_ms)}",
        }
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=timeouts.pool_s, connect_args=connect_args
    )


@dataclass(frozen=True)
class Timeouts:
    """How long the database may take: to connect, to run one statement, to lend a pooled connection."""

    connect_s: int = 3
    statement_ms: int = 5000
    pool_s: float = 5.0


# Errors that mean the database cannot be reached now; any other error means it refused this one record.
_UNREACHABLE = (OperationalError, InterfaceError, DisconnectionError, SATimeoutError)


class _WalWatch:
    """Notices when another program has deleted the SQLite write-ahead log under our open connections.

    That happens when something in this process opens and closes the database file itself (which drops every
    lock SQLite holds on it) and another process then opens and closes it as if it were the last user: our
    commits would go on into a deleted file. After each commit the log must still be the file we first wrote.
    If it is not, every pooled connection is closed (each folds what it wrote into the main file) and the caller
    is told the write is not known to be safe, so it is spooled and written again (writes are idempotent).
    """

    def __init__(self, engine: Engine):
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.engine = engine
        self.path = f"{database}-wal" if database and database != ":memory:" else ""
        self.inode: int | None = None

    def lost(self) -> bool:
        if not self.path:
            return False
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if self.inode is None or inode == self.inode:
            self.inode = inode
            return False
        log.error("the SQLite write-ahead log was removed by another program; reopening the database")
        self.engine.dispose()
        self.inode = None
        return True


class Store:
    """The database behind one small interface. It opens lazily: a database that is down at start is retried on
    each use, so the app starts and serves replies without it, and picks it up when it returns."""

    def __init__(self, url: str, encryption_key: str = "", timeouts: Timeouts | None = None):
        self.url = url
        use_encryption_key(encryption_key)
        try:
            self.engine = make_engine(url, timeouts)
        except (SQLAlchemyError, ValueError, ImportError):
            raise StoreUnavailable(
                "CLINICBOT_DATABASE_URL is not a usable SQLAlchemy URL; e.g. postgresql+psycopg://user@host/db"
            ) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._ready = False
        self._wal = _WalWatch(self.engine)
        try:
            self.upgrade()
        except StoreUnavailable:
            log.warning("the database is not reachable; replies are served and exchanges spooled until it is")

    def upgrade(self) -> str:
        """Bring the schema to the newest migration (Alembic), one process at a time; returns the revision."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        try:
            with self.exclusive("migrate"), self.engine.begin() as connection:
                config.attributes["connection"] = connection
                tables = inspect(connection)
                if tables.has_table("exchanges") and not tables.has_table("alembic_version"):
                    command.stamp(config, "0001")  # a database made before migrations existed
                command.upgrade(config, "head")
                revision = MigrationContext.configure(connection).get_current_revision() or ""
        except SQLAlchemyError:
            raise StoreUnavailable(
                "cannot open the database at CLINICBOT_DATABASE_URL; check the URL and that the server is up"
            ) from None
        self._ready = True
        return revision

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """One holder at a time across every process: a PostgreSQL advisory lock (released by the server if the
        holder dies), or for SQLite a lock file beside the database (released by the OS if the holder dies)."""
        if self.engine.dialect.name == "postgresql":
            key = int.from_bytes(hashlib.sha256(f"clinicbot:{name}".encode()).digest()[:8], "big", signed=True)
            try:
                connection = self.engine.connect()
                # waiting for another holder is not a hung database: no statement or lock timeout on this wait
                connection.execute(text("SET statement_timeout = 0"))
                connection.execute(text("SET lock_timeout = 0"))
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            except SQLAlchemyError:
                raise StoreUnavailable(
                    f"cannot take the {name} lock: the database at CLINICBOT_DATABASE_URL is not reachable; "
                    "check the URL and that the server is up"
                ) from None
            try:
                yield
            finally:
                try:  # a pooled connection outlives close(), and its session lock with it: release it explicitly
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.execute(text("RESET statement_timeout"))
                    connection.execute(text("RESET lock_timeout"))
                    connection.close()
                except SQLAlchemyError:
                    connection.invalidate()  # the server session is gone, and its locks with it
            return
        database = self.engine.url.database
        folder = Path(database).parent if database and database != ":memory:" else Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f".clinicbot-{name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction, committed on leaving. StoreUnavailable when the database cannot be reached, and its
        subclass RecordRejected when it is up but refuses what was written (retrying will not help)."""
        if not self._ready:
            self.upgrade()
        try:
            with self._sessions.begin() as session:
                yield session
        except _UNREACHABLE:
            raise StoreUnavailable("the database is not reachable right now") from None
        except (SQLAlchemyError, ValueError):  # a constraint, a value too long, a NUL byte, text it cannot encode
            raise RecordRejected("the database refused the record") from None
        if self._wal.lost():
            raise StoreUnavailable("the database's write-ahead log was removed by another program; reopened it")

    # ---- exchanges ---------------------------------------------------------------------------
    def record_exchange(
        self,
        *,
        session_id: str,
        kind: str,
        rule: str,
        question_redacted: str,
        reply_text: str,
        sources: list[dict[str, object]],
        topic: str,
        confidence: float,
        latency_ms: float,
        reply_id: str | None = None,
        created_at: str | None = None,
    ) -> str:
        exchange = Exchange(
            id=reply_id or new_id(),
            created_at=dt.datetime.fromisoformat(created_at) if created_at else _now(),
            session_id=session_id,
            kind=kind,
            rule=rule,
            question_redacted=question_redacted,
            reply_text=reply_text,
            sources_json=json.dumps(sources),
            topic=topic,
            confidence=confidence,
            latency_ms=latency_ms,
            queue_status="open" if kind == "unknown" else "",
        )
        with self.session() as s:
            s.merge(exchange)  # idempotent: a spooled exchange may be written twice if a flush was interrupted
        return exchange.id

    def last_topic(self, session_id: str) -> str | None:
        with self.session() as s:
            row = s.execute(
                select(Exchange.topic)
                .where(Exchange.session_id == session_id, Exchange.topic != "")
                .order_by(Exchange.created_at.desc())
                .limit(1)
            ).first()
        return row[0] if row else None

    def add_feedback(self, reply_id: str, helpful: bool, comment_redacted: str) -> bool:
        with self.session() as s:
            if s.get(Exchange, reply_id) is None:
                return False
            rated = s.scalars(
                select(Feedback)
                .where(Feedback.reply_id == reply_id, Feedback.helpful == helpful, Feedback.comment_redacted == "")
                .order_by(Feedback.id.desc())
            ).first()
            if comment_redacted and rated is not None:  # a comment sent after the thumb belongs to that rating
                rated.comment_redacted = comment_redacted
            else:
                s.add(Feedback(reply_id=reply_id, helpful=helpful, comment_redacted=comment_redacted))
        return True

    def unanswered(self, limit: int = 200) -> list[Exchange]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(Exchange)
                    .where(Exchange.queue_status == "open")
                    .order_by(Exchange.created_at.desc())
                    .limit(limit)
                )
            )

    def count_by(self, column: str) -> dict[str, int]:
        col = getattr(Exchange, column)
        with self.session() as s:
            return {str(k): int(v) for k, v in s.execute(select(col, func.count()).group_by(col))}

    def thumbed_down(self, limit: int = 200) -> list[tuple[Exchange, Feedback]]:
        """Replies a patient marked unhelpful, newest first, with the (redacted) question and comment."""
        with self.session() as s:
            rows = s.execute(
                select(Exchange, Feedback)
                .join(Feedback, Feedback.reply_id == Exchange.id)
                .where(Feedback.helpful.is_(False))
                .order_by(Feedback.created_at.desc())
                .limit(limit)
            ).all()
        return [(row[0], row[1]) for row in rows]

    def close_queue_item(self, reply_id: str, actor: str, action: str) -> bool:
        """Mark an unanswered question as handled (`drafted`, `extended` or `dismissed`)."""
        with self.session() as s:
            exchange = s.get(Exchange, reply_id)
            if exchange is None:
                return False
            exchange.queue_status = action
            s.add(Audit(actor=actor, action=f"queue {action}", count=1, target=reply_id))
        return True

    def exchange(self, reply_id: str) -> Exchange | None:
        with self.session() as s:
            return s.get(Exchange, reply_id)

    def weekly_counts(self, since_weeks: int = 12) -> list[tuple[str, str, str, int]]:
        """(week starting, kind, explainer id, count) for recent exchanges: aggregates only, no text."""
        cutoff = _now() - dt.timedelta(weeks=since_weeks)
        with self.session() as s:
            rows = s.execute(
                select(Exchange.created_at, Exchange.kind, Exchange.topic).where(Exchange.created_at >= cutoff)
            ).all()
        counts: dict[tuple[str, str, str], int] = {}
        for created, kind, topic in rows:
            week = (created.date() - dt.timedelta(days=created.weekday())).isoformat()
            key = (week, kind, topic or "")
            counts[key] = counts.get(key, 0) + 1
        return [(*key, n) for key, n in sorted(counts.items())]

    # ---- staff users and their sessions ------------------------------------------------------
    def add_user(self, email: str, password_hash: str, role: str, actor: str) -> None:
        with self.session() as s:
            existing = s.scalars(select(User).where(User.email == email)).first()
            if existing is None:
                s.add(User(email=email, password_hash=password_hash, role=role))
                action = "user add"
            else:  # adding an existing user resets their password and role
                existing.password_hash, existing.role = password_hash, role
                s.execute(delete(StaffSession).where(StaffSession.user_id == existing.id))
                action = "user update"
            s.add(Audit(actor=actor, action=action, count=1, target=f"{email} as {role}"))

    def user(self, email: str) -> User | None:
        with self.session() as s:
            return s.scalars(select(User).where(User.email == email)).first()

    def users(self) -> list[User]:
        with self.session() as s:
            return list(s.scalars(select(User).order_by(User.email)))

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Quietly upgrade a hash made with older parameters (at login; not a staff action)."""
        with self.session() as s:
            user = s.get(User, user_id)
            if user is not None:
                user.password_hash = password_hash

    def open_staff_session(self, token_hash: str, user_id: int, lifetime: dt.timedelta) -> None:
        with self.session() as s:
            s.execute(delete(StaffSession).where(StaffSession.expires_at < _now()))
            s.add(StaffSession(token_hash=token_hash, user_id=user_id, expires_at=_now() + lifetime))

    def staff_session_user(self, token_hash: str) -> User | None:
        """The user of an unexpired session, or None."""
        with self.session() as s:
            row = s.execute(
                select(User)
                .join(StaffSession, StaffSession.user_id == User.id)
                .where(StaffSession.token_hash == token_hash, StaffSession.expires_at > _now())
            ).first()
        return row[0] if row else None

    def close_staff_session(self, token_hash: str) -> None:
        with self.session() as s:
            s.execute(delete(StaffSession).where(StaffSession.token_hash == token_hash))

    # ---- counters shared across processes ----------------------------------------------------
    def count_hit(self, key: str, expires_at: dt.datetime, amount: int = 1, also_read: str = "") -> tuple[int, int]:
        """Add `amount` to a counter in one atomic statement; return its new value and that of the counter
        `also_read` (0 if none). Concurrent hits from any number of processes each see a distinct count, so a
        limit cannot be beaten by sending many requests at once."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        statement = (
            insert(Counter)
            .values(key=key, count=amount, expires_at=expires_at)
            .on_conflict_do_update(index_elements=[Counter.key], set_={"count": Counter.count + amount})
            .returning(Counter.count)
        )
        with self.session() as s:
            count = int(s.execute(statement).scalar_one())
            other = s.scalar(select(Counter.count).where(Counter.key == also_read)) if also_read else 0
        return count, int(other or 0)

    def drop_expired_counters(self) -> int:
        with self.session() as s:
            return int(s.execute(delete(Counter).where(Counter.expires_at < _now())).rowcount or 0)  # type: ignore[attr-defined]

    # ---- the review trail of explainers ------------------------------------------------------
    def add_review_note(self, explainer_id: str, actor: str, action: str, version: int, comment: str = "") -> None:
        with self.session() as s:
            s.add(ReviewNote(explainer_id=explainer_id, actor=actor, action=action, version=version, comment=comment))
            s.add(Audit(actor=actor, action=f"explainer {action}", count=1, target=f"{explainer_id} v{version}"))

    def review_notes(self, explainer_id: str) -> list[ReviewNote]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(ReviewNote).where(ReviewNote.explainer_id == explainer_id).order_by(ReviewNote.id.desc())
                )
            )

    # ---- retention and erasure ---------------------------------------------------------------
    def purge(self, older_than_days: int, actor: str) -> int:
        cutoff = _now() - dt.timedelta(days=older_than_days)
        with self.session() as s:
            ids = list(s.scalars(select(Exchange.id).where(Exchange.created_at < cutoff)))
            if ids:
                s.execute(delete(Feedback).where(Feedback.reply_id.in_(ids)))
                s.execute(delete(Exchange).where(Exchange.id.in_(ids)))
            s.add(Audit(actor=actor, action="purge", count=len(ids), target=f"older than {older_than_days} days"))
        return len(ids)

    def forget(self, session_id: str, actor: str) -> int:
        with self.session() as s:
            ids = list(s.scalars(select(Exchange.id).where(Exchange.session_id == session_id)))
            if ids:
                s.execute(delete(Feedback).where(Feedback.reply_id.in_(ids)))
                s.execute(delete(Exchange).where(Exchange.id.in_(ids)))
            s.add(Audit(actor=actor, action="forget", count=len(ids), target="one session"))
        return len(ids)

    def export(self, session_id: str, actor: str) -> dict[str, object]:
        with self.session() as s:
            rows = list(
                s.scalars(select(Exchange).where(Exchange.session_id == session_id).order_by(Exchange.created_at))
            )
            feedback = list(s.scalars(select(Feedback).where(Feedback.reply_id.in_([r.id for r in rows]))))
            s.add(Audit(actor=actor, action="export", count=len(rows), target="one session"))
        return {
            "session": session_id,
            "exchanges": [
                {
                    "reply_id": r.id,
                    "at": r.created_at.isoformat(),
                    "kind": r.kind,
                    "question_redacted": r.question_redacted,
                    "reply": r.reply_text,
                    "sources": json.loads(r.sources_json),
                }
                for r in rows
            ],
            "feedback": [
                {
                    "reply_id": f.reply_id,
                    "at": f.created_at.isoformat(),
                    "helpful": f.helpful,
                    "comment": f.comment_redacted,
                }
                for f in feedback
            ],
        }

    def audit(self, actor: str, action: str, count: int = 0, target: str = "") -> None:
        with self.session() as s:
            s.add(Audit(actor=actor, action=action, count=count, target=target))

    def audit_log(self, limit: int = 200) -> list[Audit]:
        with self.session() as s:
            return list(s.scalars(select(Audit).order_by(Audit.at.desc()).limit(limit)))

    def status(self) -> dict[str, object]:
        try:
            with self.session() as s:
                s.execute(select(1))
            return {"status": "ok", "backend": self.engine.dialect.name}
        except StoreUnavailable:
            return {"status": "down", "backend": self.engine.dialect.name}
