"""Commands on transcript files that run no role: `export` and `transcripts`.

They read (or remove) the SQLite files directly, so they work beside a running
server; errors are `click` exceptions, which `cli.main` turns into one line.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from webchat.export import MEDIA_TYPES, header, render
from webchat.store import StoreError
from webchat.store.files import data_dir, remove, transcripts
from webchat.store.schema import scan


@click.command("export")
@click.option("--db", "db", required=True, metavar="PATH", help="the transcript file to read")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(MEDIA_TYPES)),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON entry a line; csv: RFC 4180; txt: time  direction  peer  text",
)
@click.option("--after", type=click.IntRange(0), default=0, help="only entries with a larger id")
@click.option(
    "--before", type=click.IntRange(1), default=None, help="only entries with a smaller id"
)
@click.option(
    "-o",
    "--output",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="file to write  [default: stdout]",
)
def export_command(db: str, fmt: Any, after: int, before: int | None, output: Any) -> None:
    """Write a transcript file out, even while a server is using it."""
    try:
        output.write(header(fmt))
        for page in scan(db, after, before):
            output.write(render(fmt, page))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None  # one line, exit 1, from `cli.main`
    except BrokenPipeError:
        sys.stderr.close()  # `webchat export | head` is not an error


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Age(click.ParamType):  # type: ignore[type-arg]
    """A duration such as 90s, 30m, 12h or 7d, in seconds."""

    name = "age"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        text = str(value).strip().lower()
        number, unit = text[:-1], text[-1:]
        if unit in AGE_UNITS and number.isascii() and number.isdigit():
            return int(number) * AGE_UNITS[unit]
        self.fail(f"{value!r} is not an age: give a number and s, m, h or d, e.g. 7d")


@click.command("transcripts")
@click.option(
    "--prune",
    type=Age(),
    metavar="AGE",
    help="remove the transcripts last written longer ago than AGE (e.g. 7d, 12h); "
    "one in use by a running webchat is kept",
)
def transcripts_command(prune: float | None) -> None:
    """List the default transcripts (one per endpoint, in the user data directory)."""
    directory = data_dir()
    found = transcripts(directory) if directory.is_dir() else []
    if prune is None:
        for transcript in found:
            click.echo(transcript.describe())
        if not found:
            click.echo(f"no transcripts in {directory}")
        return
    cutoff = time.time() - prune
    removed = 0
    for transcript in found:
        if transcript.written >= cutoff:
            continue
        try:
            remove(transcript.path)
        except StoreError as exc:
            click.echo(f"kept {transcript.path}: {exc}", err=True)
            continue
        click.echo(f"removed {transcript.path}")
        removed += 1
    click.echo(f"{removed} removed, {len(found) - removed} kept in {directory}")
