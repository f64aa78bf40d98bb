"""Reading what newsmon logged, as the tests check it."""

from __future__ import annotations

import logging

import pytest


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    """The records of ``event`` (a log line's first word), in order."""
    return [r for r in caplog.records if r.getMessage().startswith(event)]
