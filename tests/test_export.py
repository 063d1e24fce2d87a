"""Export formats parse back to the entries they came from."""

from __future__ import annotations

import csv
import io
import json

from webchat.export import CSV_COLUMNS, header, render
from webchat.model import Entry, Event, Message

ENTRIES: list[Entry] = [
    Event("listening", None, "waiting for clients on 127.0.0.1:9000", 0.0, 1),
    Message("in", "127.0.0.1:5", b'comma, "quote"\r\nnext', 'comma, "quote"\r\nnext', 1.5, 2),
    Message("out", None, "héllo ✓".encode(), "héllo ✓", 2.25, 3),
]


def test_jsonl_is_one_entry_a_line() -> None:
    lines = render("jsonl", ENTRIES).splitlines()
    assert [json.loads(x)["id"] for x in lines] == [1, 2, 3]
    assert json.loads(lines[1])["text"] == 'comma, "quote"\r\nnext'


def test_csv_round_trips_commas_quotes_newlines_and_utf8() -> None:
    text = header("csv") + render("csv", ENTRIES)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1][:5] == ["1", "1970-01-01T00:00:00.000Z", "event", "", "listening"]
    assert rows[2][6] == 'comma, "quote"\r\nnext' and rows[3][6] == "héllo ✓"
    assert rows[3][5] == ""


def test_csv_cells_that_a_spreadsheet_would_run_are_text() -> None:
    said = ['=HYPERLINK("http://evil.example","click")', "+1", "-2", "@SUM(A1)", "\tx", "\ry"]
    entries = [Message("in", "127.0.0.1:5", t.encode(), t, 0.0, i) for i, t in enumerate(said)]
    rows = list(csv.reader(io.StringIO(render("csv", entries), newline="")))
    assert [row[6] for row in rows] == ["'" + t for t in said]
    plain = Message("in", "127.0.0.1:5", b"a=b", "a=b", 0.0, 9)
    assert next(csv.reader(io.StringIO(render("csv", [plain]))))[6] == "a=b"
    assert json.loads(render("jsonl", entries[:1]))["text"] == said[0]  # exact in JSON Lines


def test_txt_reads_like_the_log_one_line_an_entry() -> None:
    assert render("txt", ENTRIES).splitlines() == [
        "1970-01-01T00:00:00.000Z  ---  -  listening: waiting for clients on 127.0.0.1:9000",
        '1970-01-01T00:00:01.500Z  in   127.0.0.1:5  comma, "quote"\\r\\nnext',
        "1970-01-01T00:00:02.250Z  out  *  héllo ✓",
    ]
    assert header("txt") == header("jsonl") == ""
