"""The exception tree. Every message says what to do next and never carries patient text.

ClinicbotError
├── ConfigError            a setting is wrong or missing
├── ModelError             a bundled model is missing or its files do not match the pinned hash
├── KnowledgeError         explainer files are invalid (carries path:line problems)
├── IndexUnavailable       the Chroma index cannot be reached or has not been built
├── StoreUnavailable       the database cannot be reached
│   └── RecordRejected     the database is up but refused this one record (too long, a NUL byte, ...)
├── InvalidMessage         the patient's message cannot be processed (empty, too long, bad encoding)
├── PipelineError          an unexpected failure inside the pipeline, with the patient text stripped
├── AccessDenied           a staff member's role does not allow the action
└── CurationError          an explainer cannot be saved, submitted, approved or rolled back as asked
"""

from __future__ import annotations


class ClinicbotError(Exception):
    """Base class: str(error) is a complete, patient-text-free sentence saying what to do."""


class ConfigError(ClinicbotError):
    pass


class ModelError(ClinicbotError):
    pass


class KnowledgeError(ClinicbotError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class IndexUnavailable(ClinicbotError):
    pass


class StoreUnavailable(ClinicbotError):
    pass


class RecordRejected(StoreUnavailable):
    """Retrying will not help: the record is kept apart (see bot/spool.py), the rest are written."""


class InvalidMessage(ClinicbotError):
    """The message itself cannot be handled; str() is safe to show to the patient."""


class PipelineError(ClinicbotError):
    pass


class AccessDenied(ClinicbotError):
    pass


class CurationError(ClinicbotError):
    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        super().__init__(message if not self.problems else message + "\n" + "\n".join(self.problems))
