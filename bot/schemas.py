"""Records that cross module borders: explainers, chunks, sources, replies, redaction entities."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["answer", "emergency", "refer", "out_of_scope", "unknown"]
KINDS: tuple[str, ...] = ("answer", "emergency", "refer", "out_of_scope", "unknown")
# sample: shipped example text no clinician has approved; served (labelled) on the embedded defaults only.
Status = Literal["draft", "in_review", "sample", "approved", "retired"]


def _names_a_reviewer(reviewed_by: str) -> bool:
    """True for a person (a name or a staff e-mail), not for a placeholder such as 'Sample content - awaiting ...'."""
    text = reviewed_by.strip().lower()
    return bool(text) and not any(word in text for word in ("sample", "awaiting", "pending", "tbd", "unknown"))


class Picture(BaseModel):
    """A diagram shown with the explainer: an SVG in knowledge/images/, with the words a screen reader says."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*\.svg$")
    alt: str = Field(min_length=10)


class ExplainerMeta(BaseModel):
    """Front matter of an explainer file, validated."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
    title: str = Field(min_length=3)
    category: Literal["treatment", "topic"] = "treatment"
    summary: str = ""
    aliases: list[str] = Field(default_factory=list)
    status: Status
    version: int = Field(ge=1)
    reviewed_by: str = Field(min_length=1)
    reviewed_on: date
    review_due: date
    sources: list[str] = Field(min_length=1)
    images: list[Picture] = Field(default_factory=list)

    @field_validator("aliases")
    @classmethod
    def _aliases_clean(cls, aliases: list[str]) -> list[str]:
        return [str(a).strip().lower() for a in aliases if str(a).strip()]

    @model_validator(mode="after")
    def _due_after_review(self) -> ExplainerMeta:
        if self.review_due <= self.reviewed_on:
            raise ValueError("review_due must be after reviewed_on")
        if self.status == "approved" and not _names_a_reviewer(self.reviewed_by):
            raise ValueError("an approved explainer names the clinician who reviewed it in reviewed_by")
        return self


@dataclass(frozen=True)
class Section:
    heading: str
    text: str
    line: int


@dataclass(frozen=True)
class Explainer:
    meta: ExplainerMeta
    body: str
    sections: tuple[Section, ...]
    path: str

    @property
    def id(self) -> str:
        return self.meta.id


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of an explainer: a section, or one FAQ question with its answer."""

    id: str
    explainer_id: str
    title: str
    section: str
    text: str
    version: int
    reviewed_on: str
    content_hash: str


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    section: str
    version: int = 1
    reviewed_on: str = ""
    status: str = "approved"  # or "sample": example text the clinic has not reviewed, labelled as such
    images: tuple[tuple[str, str], ...] = ()  # (file, alt) of the explainer's diagrams, served under /images/

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "section": self.section,
            "version": self.version,
            "reviewed_on": self.reviewed_on,
            "status": self.status,
            "images": [{"url": f"/images/{file}", "alt": alt} for file, alt in self.images],
        }


@dataclass
class Reply:
    kind: Kind
    text: str
    sources: list[Source] = field(default_factory=list)
    rule: str = ""
    confidence: float = 0.0
    latency_ms: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    session: str = ""
    reply_id: str = ""
    stored: bool = True
    spooled: bool = False  # not stored yet: kept (redacted) on local disk until the database is back

    def public(self, request_id: str | None = None) -> dict[str, object]:
        """The reply object of DESIGN.md (`ask --jsonl` and `/api/chat`)."""
        return {
            "id": request_id,
            "kind": self.kind,
            "text": self.text,
            "sources": [s.public() for s in self.sources],
            "latency_ms": round(self.latency_ms, 2),
            "rule": self.rule,
        }


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int
    score: float

    def public(self) -> dict[str, object]:
        return {"type": self.type, "start": self.start, "end": self.end, "score": round(self.score, 3)}


@dataclass(frozen=True)
class Redaction:
    text: str
    entities: tuple[Entity, ...]
