"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1) read with json, since feedparser 6
cannot. Only the fields newsmon uses are read; a field of the wrong type counts as absent,
as the spec asks readers to be lenient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

VERSION_MARK = "jsonfeed.org/version/"  # after https:// (or http://, which feeds use too)
_TYPES = ("application/feed+json", "application/json")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class JsonItem:
    """One item's raw fields; parse.py turns it into an Entry like any other item."""

    id: str
    url: str
    title: str  # plain text, per the spec
    summary: str  # plain text
    content_html: str
    content_text: str
    published: datetime | None


def looks_like_json_feed(body: bytes, content_type: str) -> bool:
    """JSON served as JSON, or an object naming a jsonfeed.org version near its start."""
    head = body[:1024].removeprefix(_BOM).lstrip()
    media = content_type.split(";")[0].strip().lower()
    if media in _TYPES:
        return head.startswith((b"{", b"["))  # not "<": a feed mislabelled as JSON is XML
    return head.startswith(b"{") and VERSION_MARK.encode() in head


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _date(value: object) -> datetime | None:
    """RFC 3339, as the spec requires; a date without an offset is taken as UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _item(raw: dict[str, Any]) -> JsonItem:
    ident = raw.get("id")
    # 1.1: "id ... If the id is a number, convert it to a string" (NaN was read as null)
    ident = str(ident) if isinstance(ident, int | float) and not isinstance(ident, bool) else ident
    return JsonItem(
        id=_text(ident),
        url=_text(raw.get("url")),
        title=_text(raw.get("title")),
        summary=_text(raw.get("summary")),
        content_html=_text(raw.get("content_html")),
        content_text=_text(raw.get("content_text")),
        published=_date(raw.get("date_published")) or _date(raw.get("date_modified")),
    )


def read_json_feed(body: bytes) -> tuple[str | None, list[JsonItem]]:
    """The feed's title and items in document order.

    Raises ValueError when the bytes are not JSON or not a JSON Feed (no jsonfeed.org
    version), its message a line for the user (the caller raises it as a ParseError).
    """
    try:
        # RFC 8259: UTF-8 (json sniffs 16/32). NaN and Infinity are no JSON; Python's json
        # reads them, and every item whose id is NaN shared the key "id:nan": as null, an
        # item falls back to its link or its text for its identity.
        document = json.loads(body.removeprefix(_BOM), parse_constant=lambda _: None)
    except json.JSONDecodeError as e:
        # e.msg is one of json's fixed phrases ("Expecting value"), never the text itself
        fault = e.msg.removesuffix(" at").lower()
        raise ValueError(f"malformed JSON at line {e.lineno}, column {e.colno}: {fault}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"malformed JSON: not UTF-8 (byte {e.start})") from None
    except RecursionError:
        raise ValueError("malformed JSON: nested too deeply to read") from None
    except ValueError:  # what is left: an integer past Python's 4,300 digits
        raise ValueError("malformed JSON: a number too long to read") from None
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith(
        (f"https://{VERSION_MARK}", f"http://{VERSION_MARK}")
    ):
        raise ValueError("not a feed: JSON without a jsonfeed.org version")
    items = document.get("items")
    raw_items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    return _text(document.get("title")) or None, [_item(i) for i in raw_items]
