"""A quick run of the benchmark keeps it from rotting: every row completes, nothing is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"


def test_quick_benchmark_completes_every_row() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (
        "tcp→ws",
        "batched",
        "ws→tcp",
        "round trip",
        "relay fan-out",
        "ws fan-out",
        "bulk",
        "stack",
        "stack relay fan-out",
        "round trip :memory:",
        "redis÷sqlite",
        "fan-out, 3 instances",
        "fan-out latency, 3",
        "fan-out, 3 machines",
    )
    for row in (
        *rows,
        "idle TCP",
        "idle WebSocket",
        "durability",
        "client ceiling",
        "stalled",
        "catch-up",
        "RSS, stalled",
    ):
        assert row in result.stdout
