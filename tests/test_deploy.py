"""deploy/: the compose file and HAProxy config of docs/scale-out.md, parsed and held to their
promises (no Docker engine or HAProxy runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
INSTANCES = ["webchat1", "webchat2", "webchat3"]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def haproxy() -> dict[str, list[list[str]]]:
    """Each section (`backend webchat_http`, ...) and its directives, split into words."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for raw in (DEPLOY / "haproxy.cfg").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), [])
        else:
            current.append(line.split())
    return sections


def test_three_instances_share_one_room_in_redis_with_one_token() -> None:
    services = compose()["services"]
    assert set(INSTANCES) <= set(services) and "redis" in services
    for name in INSTANCES:
        command = services[name]["command"]
        assert command[:2] == ["webchat", "server"]
        assert "--store=redis://redis:6379/0" in command and "--room=default" in command
        assert "--http-host=0.0.0.0" in command and "--tcp-host=0.0.0.0" in command
        assert services[name]["environment"]["WEBCHAT_TOKEN"].startswith("${WEBCHAT_TOKEN:?")
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "--appendonly" in services["redis"]["command"]


def test_the_balancer_publishes_the_page_and_the_tcp_port() -> None:
    balancer = compose()["services"]["balancer"]
    assert set(balancer["ports"]) == {"8000:8000", "9000:9000"}
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]


def test_haproxy_passes_websockets_and_tcp_to_every_instance() -> None:
    config = haproxy()
    assert ["timeout", "tunnel", "1h"] in config["defaults"]  # WebSockets stay up
    assert ["mode", "http"] in config["frontend page"] and ["bind", ":8000"] in config[
        "frontend page"
    ]
    assert ["mode", "tcp"] in config["frontend peers"] and ["bind", ":9000"] in config[
        "frontend peers"
    ]
    http = config["backend webchat_http"]
    assert ["option", "httpchk", "GET", "/healthz"] in http
    assert [d[1:3] for d in http if d[0] == "server"] == [[n, f"{n}:8000"] for n in INSTANCES]
    tcp = config["backend webchat_tcp"]
    servers = [d for d in tcp if d[0] == "server"]
    assert [d[1:3] for d in servers] == [[n, f"{n}:9000"] for n in INSTANCES]
    assert all(d[3:] == ["check", "port", "8000"] for d in servers)  # no checks as peers
