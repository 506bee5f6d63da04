"""Fixed replies (emergency, refer, out of scope, unknown) from the templates in `prompts/replies.yaml`."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from bot.config import Settings


@lru_cache(maxsize=1)
def _templates() -> dict[str, str]:
    text = resources.files("bot.prompts").joinpath("replies.yaml").read_text("utf-8")
    return {k: " ".join(str(v).split()) for k, v in yaml.safe_load(text).items()}


def reply_text(key: str, settings: Settings) -> str:
    templates = _templates()
    template = templates.get(key) or templates[key.split(".")[0]]
    return template.format(
        clinic_name=settings.clinic_name,
        clinic_phone=settings.clinic_phone,
        urgent_phone=settings.urgent_phone or settings.clinic_phone,
        emergency_number=settings.emergency_number,
        crisis_line=settings.crisis_line,
        booking_url=settings.booking_url,
        opening_hours=settings.opening_hours,
    )
