"""Logs as one line per event: ``event key=value ...``, greppable and journal-friendly."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

_LEVELS = ("debug", "info", "warning", "error")


def _value(value: object) -> str:
    text = str(value).replace("\n", " ").replace("\r", " ")
    if not text or any(c in text for c in ' "='):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def kv(event: str, **fields: object) -> str:
    """``poll_ok feed=https://... new=3``: the event name, then fields that are not None."""
    parts = [event, *(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)]
    return " ".join(parts)


def log_event(logger: logging.Logger, level: int, event: str, **fields: object) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, "%s", kv(event, **fields))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at each record, not the one it was made with:
    an embedding program (or a test) may swap and close the stream it started with."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        """StreamHandler.__init__ assigns one; the property ignores it."""


def configure_logging(level: str) -> None:
    """Log to stderr; under systemd's journal (JOURNAL_STREAM set) without timestamps,
    since the journal adds its own."""
    if level not in _LEVELS:
        raise ValueError(f"log level must be one of {', '.join(_LEVELS)}")
    fmt = "%(levelname)s %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(fmt))
    handler.set_name("newsmon")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "newsmon"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # libraries stay quiet unless something is really wrong
    for noisy in ("apscheduler", "trafilatura", "htmldate", "courlan", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(logging.ERROR if level != "debug" else logging.DEBUG)
