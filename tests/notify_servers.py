"""Helpers shared by the notifier tests: an alert to send and a leak check.

Not a conftest (pytest does not load it by itself); the notifier tests import it.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.models import Alert, AlsoSeen, SendResult


def make_alert(**changes: Any) -> Alert:
    """A realistic alert; keyword arguments replace fields."""
    alert = Alert(
        delivery_id="d-0001",
        hit_id="h-0001",
        rule="russia-embassy",
        title="Russia's embassy in Ankara says talks were useful",
        url="https://www.example.org/news/2025/02/27/russia-embassy?utm=x&page=2",
        feed="Business Recorder",
        published=datetime(2025, 2, 27, 9, 58, tzinfo=UTC),
        matched=("Russia", "embassy"),
        snippet="… officials at Russia's embassy in Ankara said the talks were useful, "
        "adding that the embassy would publish a statement later …",
        also=(
            AlsoSeen(
                url="https://news.example.net/world/ankara-talks",
                feed="Example Net",
                title="Ankara talks useful, says Russian embassy",
            ),
        ),
    )
    return dataclasses.replace(alert, **changes)


def assert_no_leak(
    secret: str,
    result: SendResult,
    caplog: pytest.LogCaptureFixture,
    ignore: tuple[str, ...] = (),
) -> None:
    """``secret`` appears neither in the result's detail nor in any captured log record.

    ``ignore`` names loggers of the test's fake servers (their side, not newsmon's).
    """
    assert secret not in result.detail
    assert "\n" not in result.detail
    for record in caplog.records:
        if record.name.startswith(ignore):
            continue
        assert secret not in record.getMessage()
        assert secret not in (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            assert secret not in str(record.exc_info[1])
