"""No Docker engine runs here, so the Dockerfile is parsed and held to its promises."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def values(keyword: str) -> list[str]:
    return [arg for key, arg in instructions() if key == keyword]


def test_slim_python_base() -> None:
    (base,) = values("FROM")
    assert base.startswith("python:3.") and base.endswith("-slim")


def test_runs_as_a_non_root_user() -> None:
    users = values("USER")
    assert users and users[-1] not in ("root", "0")
    order = [key for key, _ in instructions()]
    assert order.index("USER") > max(i for i, key in enumerate(order) if key == "RUN")


def test_exposes_both_ports_and_listens_on_all_interfaces() -> None:
    assert values("EXPOSE") == ["8000 9000"]
    command = json.loads(values("CMD")[-1])
    assert command[:2] == ["webchat", "server"]
    assert command[command.index("--http-host") + 1] == "0.0.0.0"
    assert command[command.index("--tcp-host") + 1] == "0.0.0.0"


def test_healthcheck_probes_healthz() -> None:
    (check,) = values("HEALTHCHECK")
    assert "/healthz" in check and "CMD" in check


def test_copies_what_the_wheel_needs() -> None:
    copied = " ".join(values("COPY"))
    for part in ("pyproject.toml", "webchat", "templates", "static"):
        assert part in copied


def test_keeps_the_transcript_in_a_volume() -> None:
    assert values("VOLUME") == ["/data"]
    assert "XDG_DATA_HOME=/data" in values("ENV")
