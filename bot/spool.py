"""Exchanges waiting for the database: redacted records on local disk, written once the database is back.

Only ever holds what the store would hold (redacted question, the bot's reply, kind, sources): never raw text.
Each process appends to its own file; whoever flushes claims a file by renaming it, so two processes never write
the same record twice. A record the database refuses (not one it could not be reached for) is moved to
`rejected.quarantine` and counted, so that one bad record never holds up the ones behind it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.errors import ClinicbotError, RecordRejected

log = logging.getLogger(__name__)


QUARANTINE = "rejected.quarantine"


class Spool:
    def __init__(self, folder: Path):
        self.folder = folder

    def append(self, record: dict[str, Any]) -> bool:
        """Keep one record on disk; False (and a warning) if even that fails, e.g. a full disk."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return True
        except OSError as exc:
            log.error("exchange not stored and not spooled: %s", type(exc).__name__)
            return False

    def pending(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("*.jsonl"))

    def counts(self) -> dict[str, int]:
        """Records waiting to be written, and records the database refused (kept apart for an operator)."""

        def lines(paths: list[Path]) -> int:
            total = 0
            for path in paths:
                try:
                    total += sum(1 for line in path.read_bytes().splitlines() if line.strip())
                except OSError:
                    continue
            return total

        if not self.folder.is_dir():
            return {"pending": 0, "rejected": 0}
        waiting = [*self.folder.glob("*.jsonl"), *self.folder.glob("*.flushing")]
        return {"pending": lines(waiting), "rejected": lines([self.folder / QUARANTINE])}

    def _quarantine(self, line: str) -> None:
        with open(self.folder / QUARANTINE, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def drain(self, write: Callable[[dict[str, Any]], object]) -> int:
        """Write every spooled record; a record that fails stays spooled for the next attempt."""
        written = 0
        stale = [p for p in self.folder.glob("*.flushing") if time.time() - p.stat().st_mtime > 60]  # flusher died
        for path in sorted([*self.folder.glob("*.jsonl"), *stale]):
            claimed = self.folder / f"{path.name.split('.')[0]}.{os.getpid()}.flushing"
            try:
                path.rename(claimed)
            except OSError:
                continue  # another process claimed it first
            lines = claimed.read_text(encoding="utf-8").splitlines()
            left: list[str] = []
            for number, line in enumerate(lines):
                try:
                    write(json.loads(line))
                    written += 1
                except RecordRejected:
                    self._quarantine(line)
                    log.error("the database refused a spooled exchange; kept apart in %s", QUARANTINE)
                except ClinicbotError:
                    left = lines[number:]
                    break
                except (ValueError, TypeError):  # a damaged line: kept apart too, never dropped
                    self._quarantine(line)
                    log.error("a damaged spooled exchange was kept apart in %s", QUARANTINE)
            if left:
                with open(self.folder / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as handle:
                    handle.write("\n".join(left) + "\n")
            claimed.unlink()
            if left:
                break
        return written
