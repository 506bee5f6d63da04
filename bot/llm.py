"""Optional generated answers through LangChain chat models, checked sentence by sentence against the vetted text.

The model sees only the redacted question and the retrieved explainer text. An answer with any sentence
the text does not support, or any number the text does not contain, is dropped for the extractive one.
Triage is never delegated here.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from bot.answer import Composed, _sources, supported
from bot.config import Settings
from bot.embed import Embedder
from bot.errors import ConfigError
from bot.retrieve import Retrieval

log = logging.getLogger(__name__)
NOT_IN_TEXT = "NOT IN TEXT"


def _template() -> str:
    return resources.files("bot.prompts").joinpath("answer.md").read_text("utf-8")


def chat_model(spec: str, api_key: str = "") -> Any:
    """A LangChain chat model from a spec: 'openai:MODEL@BASE_URL' (any OpenAI-compatible server) or 'ollama:MODEL[@URL]'."""
    provider, _, rest = spec.partition(":")
    model, _, url = rest.partition("@")
    if not model:
        raise ConfigError(
            f"CLINICBOT_LLM={spec!r}: name a model, e.g. 'openai:gpt-4o-mini@https://host/v1' or 'ollama:llama3.1'"
        )
    if provider == "openai":
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        key = SecretStr(api_key or "not-needed")  # local OpenAI-compatible servers accept any key
        return ChatOpenAI(model=model, base_url=url or None, api_key=key, temperature=0, timeout=20)
    if provider == "ollama":
        from langchain_ollama import ChatOllama

        return ChatOllama(model=model, base_url=url or None, temperature=0)
    raise ConfigError(f"CLINICBOT_LLM={spec!r}: the provider must be 'openai' or 'ollama'")


class GeneratedAnswerer:
    """AnswerBackend over a chat model; returns None (so the pipeline falls back) unless every sentence is grounded."""

    def __init__(self, model: Any, embedder: Embedder, max_context_chunks: int = 3):
        self.model = model
        self.embedder = embedder
        self.max_context_chunks = max_context_chunks

    def compose(self, question: str, retrieval: Retrieval) -> Composed | None:
        snap = retrieval.snapshot
        if snap is None or not retrieval.hits:
            return None
        primary = retrieval.hits[0].row.explainer_id
        allowed = {primary} | (set(retrieval.mentioned) if retrieval.comparing else set())
        hits = [h for h in retrieval.hits if h.row.explainer_id in allowed][: self.max_context_chunks]
        context = "\n\n".join(f"[{h.row.title} — {h.row.section}]\n{h.row.text}" for h in hits)
        prompt = _template().format(context=context, question=question)
        try:
            answer = str(self.model.invoke(prompt).content).strip()
        except Exception as exc:  # the model is optional: any failure means the extractive answer
            log.warning("LLM call failed (%s); using the extractive answer", type(exc).__name__)
            return None
        if not answer or NOT_IN_TEXT in answer:
            return None
        rows = [snap.sentences[i] for h in hits for i in snap.sentences_of.get(h.row.id, [])]
        if not rows:
            return None
        vectors = snap.sentence_vectors[[snap.sentences.index(r) for r in rows]]
        if not supported(answer, " ".join(h.row.text for h in hits), vectors, self.embedder):
            log.info("LLM answer not supported by the vetted text; using the extractive answer")
            return None
        return Composed(answer, _sources([h.row for h in hits]))


def llm_backend(settings: Settings, embedder: Embedder) -> GeneratedAnswerer:
    if not settings.llm_allow_network:
        raise ConfigError(
            f"CLINICBOT_LLM={settings.llm!r} would call a model over the network, which is switched off here "
            "(CLINICBOT_LLM_ALLOW_NETWORK=false); tests use a fake chat model instead"
        )
    return GeneratedAnswerer(chat_model(settings.llm, settings.llm_api_key), embedder)
