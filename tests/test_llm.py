"""The optional LLM backend, with LangChain's FAKE chat models (no model can run offline here).

FakeListChatModel is a fake: it returns canned text. These tests check what we do with a model's output:
keep it only when every sentence is grounded in the vetted text, and send the model only redacted text.
"""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from bot.chat import Pipeline
from bot.errors import ConfigError
from bot.llm import GeneratedAnswerer, chat_model, llm_backend
from tests.conftest import make_settings


class RecordingFakeChatModel(FakeListChatModel):
    """A fake chat model that also records every prompt it was sent."""

    prompts: list[str] = []

    def invoke(self, input, config=None, **kwargs):  # type: ignore[no-untyped-def]
        self.prompts.append(str(input))
        return super().invoke(input, config, **kwargs)


def _pipeline_with(pipeline: Pipeline, model: FakeListChatModel) -> Pipeline:
    pipeline.backend = GeneratedAnswerer(model, pipeline.search.embedder)
    return pipeline


def test_a_grounded_generated_answer_is_kept(pipeline):
    faithful = "Most toxin brands last about 3 to 4 months. Results fade slowly as the muscle moves again."
    reply = _pipeline_with(pipeline, FakeListChatModel(responses=[faithful])).ask("how long does botox last")
    assert reply.kind == "answer" and reply.rule == "answer.generated"
    assert reply.text == faithful
    assert reply.sources[0].id == "botulinum-toxin"


@pytest.mark.parametrize(
    "invented",
    [
        "Botox lasts about 2 years for most people.",  # a number the text does not have
        "Most toxin brands last about 3 to 4 months. Botox also cures migraines in everyone and melts fat.",
        "Your horoscope says this is a lucky week for fillers.",
    ],
)
def test_an_invented_fact_falls_back_to_the_extractive_answer(pipeline, invented):
    reply = _pipeline_with(pipeline, FakeListChatModel(responses=[invented])).ask("how long does botox last")
    assert reply.rule == "answer.extractive"
    assert reply.text != invented and "3 to 4 months" in reply.text


def test_not_in_text_falls_back(pipeline):
    reply = _pipeline_with(pipeline, FakeListChatModel(responses=["NOT IN TEXT"])).ask("how long does botox last")
    assert reply.rule == "answer.extractive"


def test_the_model_sees_only_redacted_text(pipeline):
    model = RecordingFakeChatModel(responses=["Most toxin brands last about 3 to 4 months."])
    _pipeline_with(pipeline, model).ask("I'm Harriet Okonkwo-Lindqvist, 415-555-0123, how long does botox last?")
    sent = "\n".join(model.prompts)
    assert model.prompts and "Okonkwo" not in sent and "555-0123" not in sent
    assert "<PERSON>" in sent and "<PHONE>" in sent


def test_triage_is_never_delegated(pipeline):
    model = RecordingFakeChatModel(responses=["anything"])
    reply = _pipeline_with(pipeline, model).ask("my vision went blurry right after my filler")
    assert reply.kind == "emergency" and model.prompts == []


def test_network_models_are_refused_in_tests(models, tmp_path):
    settings = make_settings(tmp_path, llm="openai:gpt-4o-mini@http://127.0.0.1:9/v1", llm_allow_network=False)
    with pytest.raises(ConfigError, match="network"):
        llm_backend(settings, models.embedder)


@pytest.mark.parametrize("spec", ["gpt-4", "openai:", "bard:x"])
def test_bad_llm_specs_name_the_setting(spec):
    with pytest.raises(ConfigError, match="CLINICBOT_LLM"):
        chat_model(spec)
