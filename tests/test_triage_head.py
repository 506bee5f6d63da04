"""Triage's learned head: shipped with a hash, used only with the setting on, and on the safe side when unsure."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from bot.triage import Triage
from bot.triage.context import read_context
from bot.triage.head import Head


@pytest.fixture(scope="module")
def triage() -> Triage:
    return Triage(head=True)


def test_the_shipped_head_matches_its_hash() -> None:
    package = resources.files("bot.triage")
    digest = hashlib.sha256(package.joinpath("head.npz").read_bytes()).hexdigest()
    assert package.joinpath("head.sha256").read_text("utf-8").split()[0] == digest
    assert Head.bundled() is not None


def test_without_an_embedding_only_the_rules_decide(triage) -> None:
    assert triage.classify("what's a good pasta recipe").rule in {"none", "out_of_scope.off_topic"}


@pytest.mark.parametrize(
    "message",
    [
        "my husband has had a crushing pain in his chest for half an hour and he is sweating",
        "my 2 month old has a fever of 39 and won't feed",
        "everyone would be better off without me, I have the pills ready",
    ],
)
def test_general_emergencies_the_rules_never_listed_are_not_answered(triage, models, message) -> None:
    vector = models.embedder.embed_query(message)
    decision = triage.classify(message, vector, models.embedder.encode)
    assert decision.kind in {"emergency", "refer"}, decision  # refer only through the unsure band, with the line
    assert decision.rule.startswith(("emergency", "model"))


def test_a_danger_sign_buried_in_a_long_message_wins(triage, models) -> None:
    message = (
        "Hi, I wanted to move my appointment on Friday to next week if that works for you. "
        "Also since my filler between the brows this morning my right eyelid is drooping and I have a bad headache. "
        "And do you have parking near the clinic?"
    )
    decision = triage.classify(message, models.embedder.embed_query(message), models.embedder.encode)
    assert decision.kind == "emergency"


def test_the_decision_records_the_score_never_the_text(triage, models) -> None:
    message = "how long does botox last"
    decision = triage.classify(message, models.embedder.embed_query(message), models.embedder.encode, named=True)
    assert decision.kind == "pass" and 0 < decision.score <= 1
    assert message not in repr(decision)


def test_the_context_layer_marks_negation_hypotheticals_and_history() -> None:
    assert read_context("no swelling at all, just wondering").shares["negated"] > 0
    assert read_context("what would a blocked vessel look like").shares["hypothetical"] > 0
    assert read_context("I had a bruise last year that went away").shares["historical"] > 0
    assert read_context("my friend got filler and her lip went white").shares["other_person"] > 0
    assert read_context("my lip is white").shares == dict.fromkeys(read_context("").shares, 0.0)
