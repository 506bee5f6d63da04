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


class AccessLine(logging.Filter):
    """Uvicorn's access line without the client's address (personal data) or the query string (could be typed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _client, method, path, version, status = args
            record.args = ("-", method, str(path).split("?", 1)[0], version, status)
        return True


def server_log_config(level: str = "INFO") -> dict[str, object]:
    """The logging of `clinicbot serve`, applied by uvicorn in the supervisor and again in every worker process:
    one format, and every record through NoExceptionText (access lines through AccessLine too)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "no_exception_text": {"()": "bot.logfilter.NoExceptionText"},
            "access_line": {"()": "bot.logfilter.AccessLine"},
        },
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "filters": ["no_exception_text"],
            },
            "access": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "filters": ["no_exception_text", "access_line"],
            },
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
        },
    }
