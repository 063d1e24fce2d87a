"""The transcript as a file: JSON Lines, CSV or the seed's plain log.

Pure functions from entries to text, so the API's streaming download and
`webchat export` (offline, from the file) write the same bytes page by page,
in constant memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Literal

from webchat.model import Entry, Message, iso_utc
from webchat.notation import printable
from webchat.wire.json import frame

Format = Literal["jsonl", "csv", "txt"]
MEDIA_TYPES: dict[Format, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}
CSV_COLUMNS = ("id", "ts", "type", "direction", "kind", "peer", "text")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting so is a formula to a spreadsheet (OWASP, CSV injection): a peer's
`=HYPERLINK(...)` would be live. Such cells get a leading `'`, which spreadsheets show
as text; the exact text stays in JSON Lines."""


def header(fmt: Format) -> str:
    """What goes before the first entry: the CSV column names, else nothing."""
    return _csv([CSV_COLUMNS]) if fmt == "csv" else ""


def render(fmt: Format, entries: Iterable[Entry]) -> str:
    if fmt == "jsonl":
        return "".join(frame(entry) + "\n" for entry in entries)
    if fmt == "csv":
        return _csv(_csv_row(entry) for entry in entries)
    return "".join(_txt_line(entry) + "\n" for entry in entries)


def _csv(rows: Iterable[Iterable[object]]) -> str:
    """RFC 4180: the csv module quotes commas, quotes and line breaks; lines end in CRLF."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _csv_row(entry: Entry) -> tuple[object, ...]:
    ts = iso_utc(entry.ts)
    if isinstance(entry, Message):
        return (entry.id, ts, "message", entry.direction, "", entry.peer or "", _cell(entry.text))
    return (entry.id, ts, "event", "", entry.kind, entry.peer or "", _cell(entry.detail))


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _txt_line(entry: Entry) -> str:
    """`time  direction  peer  text`, like the original programs' log; one line an entry."""
    ts = iso_utc(entry.ts)
    if isinstance(entry, Message):
        return f"{ts}  {entry.direction:<3}  {entry.peer or '*'}  {printable(entry.text)}"
    detail = f": {printable(entry.detail)}" if entry.detail else ""
    return f"{ts}  ---  {entry.peer or '-'}  {entry.kind}{detail}"
