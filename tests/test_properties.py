"""Property-based tests: any input through validate → redact → triage never crashes, and identifiers never survive."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.chat import validate
from bot.errors import InvalidMessage
from bot.triage import Triage

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TRIAGE = Triage()
KINDS = {"emergency", "refer", "out_of_scope", "pass"}


@pytest.fixture(scope="module")
def redactor(models):
    return models.redactor


@FAST
@given(st.one_of(st.text(max_size=3000), st.binary(max_size=3000), st.none(), st.integers()))
def test_any_input_is_validated_or_refused_with_a_message(message):
    try:
        text = validate(message, 2000)
    except InvalidMessage as exc:
        assert str(exc) and (not isinstance(message, str) or message not in str(exc) or not message.strip())
        return
    assert isinstance(text, str) and 0 < len(text) <= 2000


@FAST
@given(st.text(max_size=1500))
def test_redact_and_triage_never_crash(redactor, text):
    result = redactor.redact(text)
    assert isinstance(result.text, str)
    for entity in result.entities:
        assert 0 <= entity.start < entity.end <= len(text)
    assert TRIAGE.classify(text).kind in KINDS


_local = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=3, max_size=12)
_filler = st.text(alphabet=string.ascii_letters + " ,.?!'éñü", max_size=120)


@FAST
@given(_filler, _local, _local, _filler)
def test_an_email_anywhere_is_removed(redactor, before, user, extra, after):
    email = f"{user}.{extra}@example.com"
    assert email not in redactor.redact(f"{before} {email} {after}").text


@FAST
@given(_filler, st.integers(min_value=200, max_value=989), st.integers(min_value=0, max_value=9999), _filler)
def test_a_us_phone_anywhere_is_removed(redactor, before, area, line, after):
    phone = f"({area}) 555-{line:04d}"
    redacted = redactor.redact(f"{before} call me {phone} {after}").text
    assert f"555-{line:04d}" not in redacted


@FAST
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200))
def test_zero_width_characters_do_not_hide_an_email(redactor, noise):
    email = "qu\u200binn.z\u200bed@exa\u200dmple.org"
    redacted = redactor.redact(f"{noise} {email} {noise}").text
    assert "quinn" not in redacted.replace("\u200b", "").replace("\u200d", "")
