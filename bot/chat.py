"""The pipeline: validate → redact → triage → retrieve → answer → store, one function per step.

The raw message lives only in memory for one call. What is stored or logged is the redacted text,
the kind, the rule that fired and timings; this module is the one place that logs an exchange.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from bot.answer import AnswerBackend, ExtractiveAnswerer
from bot.bulkhead import Bulkhead
from bot.config import Settings
from bot.embed import Embedder
from bot.errors import ClinicbotError, IndexUnavailable, InvalidMessage, PipelineError, StoreUnavailable
from bot.fold import fold
from bot.index import Index, connect
from bot.knowledge import load_explainers, serving
from bot.leaflet import fill_contacts
from bot.redact import Redactor
from bot.replies import reply_text
from bot.retrieve import ExplainerRetriever, HybridSearch, Knowledge, Retrieval
from bot.schemas import Redaction, Reply
from bot.spool import Spool
from bot.store import Store, Timeouts, new_id
from bot.triage import Triage

log = logging.getLogger(__name__)
T = TypeVar("T")

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
REPLY_ID = re.compile(r"[0-9a-f]{32}")
_FOLLOW_UP = re.compile(r"\b(?:it|its|it's|that|this|they|them|those|these|one|results?|same)\b", re.IGNORECASE)


def validate(message: object, max_chars: int) -> str:
    """The message as text, or InvalidMessage with a sentence the patient can act on."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidMessage(
                "Your message could not be read (it is not valid UTF-8 text). Please type it again."
            ) from None
    if not isinstance(message, str):
        raise InvalidMessage("Please send your question as text.")
    if any(unicodedata.category(c) == "Cs" for c in message):
        raise InvalidMessage("Your message could not be read (it contains broken characters). Please type it again.")
    if _CONTROL.search(message):
        raise InvalidMessage("Your message contains control characters. Please type it again as plain text.")
    text = message.strip()
    if not text:
        raise InvalidMessage("Please type a question first.")
    if len(text) > max_chars:
        raise InvalidMessage(
            f"Your message is {len(text):,} characters long. Please keep it under {max_chars:,} characters, "
            "or split it into shorter questions."
        )
    return text


def valid_session(session: object) -> str | None:
    """The client's session id if it is one we could have issued (None for a new conversation), else
    InvalidMessage: an id is stored, so it is checked before anything is."""
    if session is None or session == "":
        return None
    if not isinstance(session, str) or not SESSION_ID.fullmatch(session):
        raise InvalidMessage(
            "The session id must be 1 to 64 letters, digits or the signs - _ . : "
            "Leave it out to start a new conversation."
        )
    return session


@dataclass
class Timer:
    timings: dict[str, float] = field(default_factory=dict)

    def step(self, name: str, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return fn()
        except ClinicbotError:
            raise
        except Exception as exc:
            # The exception boundary: nothing of the patient's text leaves in a message or a traceback.
            log.error("pipeline step %s failed: %s", name, type(exc).__name__)
            raise PipelineError(f"the {name} step failed; please try again or call the clinic") from None
        finally:
            self.timings[name] = (time.perf_counter() - start) * 1000


@dataclass
class Models:
    """The heavy parts, loaded once per process and shared by every pipeline in it."""

    redactor: Redactor
    triage: Triage
    embedder: Embedder

    @classmethod
    def load(cls, settings: Settings) -> Models:
        return cls(
            redactor=Redactor(),
            triage=Triage(head=settings.triage_head),
            embedder=Embedder(settings.embedding_model_path, settings.embedding_model_sha256, settings.torch_threads),
        )


def serving_knowledge(settings: Settings) -> Knowledge:
    """Aliases, general topics and sample explainers, from the explainer files patients may be shown."""
    shown = serving(load_explainers(settings.knowledge_dir), settings.production)
    return Knowledge(
        aliases={alias: e.id for e in shown for alias in e.meta.aliases},
        topics=frozenset(e.id for e in shown if e.meta.category == "topic"),
        samples=frozenset(e.id for e in shown if e.meta.status == "sample"),
        images={e.id: tuple((p.file, p.alt) for p in e.meta.images) for e in shown if e.meta.images},
    )


def connect_search(settings: Settings, embedder: Embedder, client: object | None = None) -> HybridSearch:
    """Hybrid search over the serving index generation; IndexUnavailable if Chroma or the index is missing."""
    index = Index(client or connect(settings), embedder, settings.chroma_prefix)
    search = HybridSearch(index, embedder, serving_knowledge(settings), reload=lambda: serving_knowledge(settings))
    index.snapshot()
    return search


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        redactor: Redactor,
        triage: Triage,
        search: HybridSearch | None,
        store: Store | None,
        backend: AnswerBackend | None = None,
        index_error: str = "",
    ):
        self.settings = settings
        self.embedder = embedder
        self.redactor = redactor
        self.triage = triage
        self.search = search
        self.retriever = ExplainerRetriever(search=search) if search else None
        self.store = store
        self.extractive = ExtractiveAnswerer(max_words=settings.answer_max_words)
        self.backend = backend
        self.index_error = index_error
        self.spool = Spool(settings.data_dir / "spool")
        self.db = Bulkhead("database", threads=4, timeout_s=settings.store_timeout_s)
        self._search_retry_at = 0.0
        self._last_lost = 0.0  # when an exchange was last neither stored nor spooled (monotonic seconds)
        self._draining = threading.Lock()
        self._drainer: threading.Thread | None = None

    def _connected_search(self) -> HybridSearch | None:
        """The search, reconnecting (at most every few seconds) if Chroma was down or the index unbuilt at start."""
        if self.search is None and self.embedder is not None and time.monotonic() >= self._search_retry_at:
            self._search_retry_at = time.monotonic() + 5
            try:
                self.search = connect_search(self.settings, self.embedder)
                self.retriever = ExplainerRetriever(search=self.search)
                self.index_error = ""
            except IndexUnavailable as exc:
                self.index_error = str(exc)
        return self.search

    @classmethod
    def build(cls, settings: Settings, *, need_index: bool = True, models: Models | None = None) -> Pipeline:
        """Load the models and connect the stores once; used by the CLI and the web app."""
        client, index_error = None, ""
        try:
            client = connect(settings)  # before the models load: a wrong setting fails in a second, not ten
        except IndexUnavailable as exc:
            if need_index:
                raise
            index_error = str(exc)
        models = models or Models.load(settings)
        redactor, triage, embedder = models.redactor, models.triage, models.embedder
        search = None
        try:
            if client is None:
                raise IndexUnavailable(index_error)
            search = connect_search(settings, embedder, client)
        except IndexUnavailable as exc:
            if need_index:
                raise
            index_error = str(exc)
        timeouts = Timeouts(settings.db_connect_timeout_s, settings.db_statement_timeout_ms, settings.store_timeout_s)
        store = Store(settings.database_url_resolved, settings.encryption_key, timeouts)
        backend = None
        if settings.llm:
            from bot.llm import llm_backend

            backend = llm_backend(settings, embedder)
        return cls(
            settings,
            embedder=embedder,
            redactor=redactor,
            triage=triage,
            search=search,
            store=store,
            backend=backend,
            index_error=index_error,
        )

    # ---- the flow ------------------------------------------------------------------------------
    def ask(self, message: object, session: str | None = None) -> Reply:
        started = time.perf_counter()
        timer = Timer()
        text = validate(message, self.settings.max_message_chars)
        session = valid_session(session) or new_id()
        redaction = timer.step("redact", lambda: self.redactor.redact(text))
        meant = fold(text)  # triage and retrieval read what the patient meant: no invisible or look-alike letters
        # one query embedding serves triage's head and retrieval (the search's own call hits the embedder's cache)
        embedder = self.embedder if self.triage.head is not None else None
        vector = timer.step("embed", lambda: embedder.embed_query(meant)) if embedder is not None else None
        encode = embedder.encode if embedder is not None else None
        named = embedder is not None and self.search is not None and bool(self.search.matcher.find(meant))
        decision = timer.step("triage", lambda: self.triage.classify(meant, vector, encode, named))
        if decision.kind != "pass":
            # an emergency rule may have its own wording (a blocked vessel: the urgent line first)
            template = decision.rule if decision.rule.startswith("emergency.") else decision.kind
            reply = Reply(kind=decision.kind, text=reply_text(template, self.settings), rule=decision.rule)  # type: ignore[arg-type]
        else:
            reply = self._answer(meant, redaction.text, session, timer)
        reply.session = session
        reply.reply_id = new_id()
        reply.timings_ms = timer.timings
        reply.latency_ms = (time.perf_counter() - started) * 1000
        self._store(redaction, reply, timer)
        reply.latency_ms = (time.perf_counter() - started) * 1000
        log.info(
            "exchange kind=%s rule=%s latency_ms=%.1f stored=%s", reply.kind, reply.rule, reply.latency_ms, reply.stored
        )
        return reply

    def _answer(self, text: str, redacted: str, session: str, timer: Timer) -> Reply:
        if self._connected_search() is None:
            return Reply(kind="unknown", text=reply_text("index_unavailable", self.settings), rule="index.unavailable")
        context = self._context_topic(text, session)
        try:
            retrieval: Retrieval = timer.step("retrieve", lambda: self.search.search(text, context_topic=context))  # type: ignore[union-attr]
        except IndexUnavailable:
            return Reply(kind="unknown", text=reply_text("index_unavailable", self.settings), rule="index.unavailable")
        if retrieval.uncovered or retrieval.unfamiliar:
            rule = "retrieve.uncovered_topic" if retrieval.uncovered else "retrieve.unfamiliar_term"
            return Reply(kind="unknown", text=reply_text("unknown", self.settings), rule=rule)
        if not retrieval.hits or retrieval.confidence < self.settings.min_confidence:
            return Reply(
                kind="unknown",
                text=reply_text("unknown", self.settings),
                rule="retrieve.low_confidence",
                confidence=retrieval.confidence,
            )
        composed, rule = None, "answer.generated"
        if self.backend is not None:
            # an external model only ever sees the redacted question
            composed = timer.step("answer", lambda: self.backend.compose(redacted, retrieval))  # type: ignore[union-attr]
        if composed is None:
            composed, rule = timer.step("answer", lambda: self.extractive.compose(text, retrieval)), "answer.extractive"
        if composed is None:
            return Reply(kind="unknown", text=reply_text("unknown", self.settings), rule="answer.nothing_grounded")
        search = self.search
        assert search is not None
        return Reply(
            kind="answer",
            text=fill_contacts(composed.text, self.settings),
            sources=[
                replace(
                    s,
                    status="sample" if s.id in search.sample_ids else s.status,
                    images=search.images.get(s.id, ()),
                )
                for s in composed.sources
            ],
            rule=rule,
            confidence=retrieval.confidence,
        )

    def _context_topic(self, text: str, session: str) -> str | None:
        """For a short follow-up ("how long does it last?"), the topic of the session's last answer."""
        words = len(text.split())
        if self.store is None or words > 14 or (words > 8 and not _FOLLOW_UP.search(text)):
            return None
        store = self.store
        try:
            return self.db.call(lambda: store.last_topic(session))
        except StoreUnavailable:
            return None

    def _topic_of(self, reply: Reply) -> str:
        """What a follow-up is about: the first treatment among the sources, else the first source."""
        general = self.search.general_topics if self.search is not None else frozenset()
        treatments = [s.id for s in reply.sources if s.id not in general]
        return (treatments or [s.id for s in reply.sources] or [""])[0]

    def _store(self, redaction: Redaction, reply: Reply, timer: Timer) -> None:
        """Record the redacted exchange; if the database is down, spool it to disk to be written later."""
        record: dict[str, Any] = {
            "session_id": reply.session,
            "kind": reply.kind,
            "rule": reply.rule,
            "question_redacted": redaction.text,
            "reply_text": reply.text,
            "sources": [s.public() for s in reply.sources],
            "topic": self._topic_of(reply),
            "confidence": reply.confidence,
            "latency_ms": reply.latency_ms,
            "reply_id": reply.reply_id,
            "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
        }
        store = self.store
        try:
            if store is None:
                raise StoreUnavailable("no database")
            # Bounded by the bulkhead's deadline: a hung database costs this reply at most that long. A write given
            # up on may still land later; the spooled copy then merges into it (same reply id).
            timer.step("store", lambda: self.db.call(lambda: store.record_exchange(**record)))
        except (StoreUnavailable, PipelineError):
            reply.stored = False
            reply.spooled = self.spool.append(record)
            if not reply.spooled:
                self._last_lost = time.monotonic()
            log.warning("exchange not stored: the database is unavailable; spooled=%s", reply.spooled)
            return
        if self.spool.pending() and not self._draining.locked():
            self._drainer = threading.Thread(target=self._drain_spool, name="spool-drain", daemon=True)
            self._drainer.start()

    def finish_writes(self, timeout_s: float = 30.0) -> None:
        """Wait for a spool drain under way (at shutdown, and in tests)."""
        if self._drainer is not None:
            self._drainer.join(timeout_s)

    def _drain_spool(self) -> None:
        """Write the spooled exchanges, in the background and one drainer at a time per process."""
        store = self.store
        if store is None or not self._draining.acquire(blocking=False):
            return
        try:
            count = self.spool.drain(lambda r: store.record_exchange(**r))
            if count:
                log.info("wrote %d spooled exchanges", count)
        finally:
            self._draining.release()

    def feedback(self, reply_id: object, helpful: bool, comment: str = "") -> bool:
        """Store a rating (and its comment, redacted) against a reply; False if there is no such reply."""
        comment = validate(comment, self.settings.max_message_chars) if comment.strip() else ""
        if not isinstance(reply_id, str) or not REPLY_ID.fullmatch(reply_id):
            return False  # not an id we issue: nothing to look up
        redacted = self.redactor.redact(comment).text if comment else ""
        store = self.store
        if store is None:
            raise StoreUnavailable("feedback cannot be stored right now")
        return self.db.call(lambda: store.add_feedback(reply_id, helpful, redacted))

    def warm(self) -> None:
        """Run each model once on a made-up message, so the first patient does not wait for lazy loading."""
        sample = "How long does Botox last on the forehead?"
        self.redactor.redact(sample)
        self.triage.classify(sample)
        search = self._connected_search()
        if search is not None:
            with contextlib.suppress(IndexUnavailable):
                search.search(sample, context_topic=None)

    def reindex(self) -> str:
        """Sync the index with the approved files after a publish; returns a warning for staff, or ""."""
        from bot.ingest import ingest

        try:
            report = ingest(self.settings, embedder=self.embedder)
        except ClinicbotError as exc:
            log.warning("re-index after publishing failed: %s", type(exc).__name__)
            return f"Saved, but the search index was not updated ({exc}). Run `clinicbot ingest`."
        if self.search is not None:
            self.search.index.refresh()  # the next search reads the new generation, and its aliases with it
        log.info("re-indexed: %d chunks changed, %d embedded", len(report.added) + len(report.updated), report.embedded)
        return ""

    def health(self) -> dict[str, object]:
        """ok, degraded or down, with the index, the database and the exchanges not yet stored.

        Degraded also when the database answers but exchanges are not reaching it: a spool that is not draining,
        records it refused, or an exchange lost in the last 10 minutes (nowhere to spool it: a full disk).
        """
        search = self._connected_search()
        index = search.index.status() if search else {"status": "down", "detail": self.index_error}
        store = self.store
        try:
            database = self.db.call(store.status, timeout_s=1.0) if store else {"status": "down"}
        except StoreUnavailable:
            database = {"status": "down", "detail": "the database did not answer within 1 s"}
        spool = self.spool.counts()
        lost_recently = self._last_lost and time.monotonic() - self._last_lost < 600
        storing = "ok"
        if spool["pending"] or spool["rejected"] or lost_recently:
            storing = "failing" if lost_recently else "behind"
        exchanges = {"status": storing, **spool, "lost_recently": bool(lost_recently)}
        ok = index.get("status") == "ok" and database.get("status") == "ok" and storing == "ok"
        down = index.get("status") != "ok" and database.get("status") != "ok"
        status = "ok" if ok else ("down" if down else "degraded")
        return {"status": status, "index": index, "database": database, "exchanges": exchanges}
