"""A logging filter that keeps tracebacks and exception text of patient-facing code out of log records.

The pipeline never logs patient text; this is the second fence, for exceptions raised by libraries.
"""

from __future__ import annotations

import logging


class NoExceptionText(logging.Filter):
    """Replaces a record's traceback with the exception's type name: library messages may quote input."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.getMessage()} [{record.exc_info[0].__name__}]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    """Add the filter to every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, NoExceptionText) for f in handler.filters):
            handler.addFilter(NoExceptionText())
