"""Transcript files on disk: where the default ones live, which are in use, removing them.

Every `--tcp-port 0` run leaves a `server-<port>.sqlite3` behind, so they pile
up; `webchat transcripts` lists them and prunes the old ones. A file is in use
while a webchat holds its advisory lock, and one in use is never removed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import platformdirs

from webchat.store import StoreError
from webchat.store.schema import translated

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, SQLite's own locking still applies
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".sqlite3"
COMPANIONS = ("-wal", "-shm")
"""SQLite's WAL and shared-memory files beside a transcript: they go with it."""


def data_dir() -> Path:
    """The user data directory where default transcripts live (honours XDG_DATA_HOME)."""
    return platformdirs.user_data_path("webchat")


def lock(path: str) -> IO[bytes]:
    """Hold the file's advisory lock for as long as the handle is open: two writers would
    hand out the same ids. Raises `StoreError` when another webchat holds it."""
    Path(path).absolute().parent.mkdir(parents=True, exist_ok=True)
    with translated(path):
        handle = open(path, "ab")  # noqa: SIM115 - held open by the caller
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StoreError(
                f"transcript {path} is in use by another webchat: stop it or choose another --db"
            ) from None
    return handle


@dataclass(frozen=True, slots=True)
class Transcript:
    path: Path
    size: int
    written: float
    in_use: bool

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.written))
        use = "  in use" if self.in_use else ""
        return f"{self.path}  {self.size / 1024 / 1024:.1f} MiB  last written {stamp}{use}"


def transcripts(directory: Path) -> list[Transcript]:
    """The transcripts in `directory`, least recently written first."""
    found = []
    for path in directory.glob(f"*{SUFFIX}"):
        parts = [path, *(path.with_name(path.name + c) for c in COMPANIONS)]
        stats = [p.stat() for p in parts if p.exists()]
        size = sum(s.st_size for s in stats)
        written = max(s.st_mtime for s in stats)
        found.append(Transcript(path, size, written, in_use(path)))
    return sorted(found, key=lambda t: t.written)


def in_use(path: Path) -> bool:
    try:
        handle: Any = lock(str(path))
    except StoreError:
        return True
    handle.close()
    return False


def remove(path: Path) -> None:
    """Delete a transcript and its companions, holding its lock meanwhile, so a webchat
    that starts on it now is refused instead of losing it. Raises `StoreError` if in use."""
    handle = lock(str(path))
    try:
        for part in (*(path.with_name(path.name + c) for c in COMPANIONS), path):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
    finally:
        handle.close()
