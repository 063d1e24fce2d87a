"""Every flag, default and limit in one place.

The CLI passes only the flags a user typed; pydantic-settings fills the rest
from `WEBCHAT_<FLAG>` variables, then from these defaults. Limits that have no
flag yet still live here, so there is one answer to "how big can it get".
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from webchat.framing import FramingName

Role = Literal["server", "client"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBCHAT_", frozen=True, extra="forbid")

    role: Role = "server"
    tcp_host: str = Field("127.0.0.1", description="address the TCP server listens on")
    tcp_port: int = Field(9000, ge=0, le=65535, description="TCP server port (0 picks a free one)")
    connect: str | None = Field(None, description="HOST:PORT the TCP client connects to")
    http_host: str = Field("127.0.0.1", description="address the page and API listen on")
    http_port: int = Field(8000, ge=0, le=65535, description="HTTP port (0 picks a free one)")
    max_clients: int = Field(0, ge=0, description="TCP clients at once; 0 means no limit")
    relay: bool = Field(False, description="also write each peer's message to every other peer")
    framing: FramingName = Field(
        "line",
        description="line: up to LF (sends LF); crlf: up to LF (sends CRLF); raw: each chunk "
        "as it came; nul: up to NUL; len16/len32: big-endian length prefix",
    )
    max_line: int = Field(
        65536, ge=1, le=16 * 1024 * 1024, description="longest message in bytes; longer is split"
    )
    db: str | None = Field(
        None,
        description="transcript file; :memory: keeps nothing (default: one file per endpoint "
        "in the user data directory)",
    )
    fsync: bool = Field(
        False, description="fsync every commit: survive power loss, not only crashes"
    )
    quiet: bool = Field(False, description="do not mirror messages and events to stdout")
    max_history: int = Field(
        1_000_000, ge=1, description="entries kept in the transcript; the oldest go first"
    )

    token: str | None = Field(
        None,
        min_length=8,
        description="needed for the page, /ws, /api and /docs (Bearer, ?token= or cookie); "
        "generated when --http-host is not loopback",
    )
    no_auth: bool = Field(False, description="no token even off loopback (prints a warning)")
    allow_origin: list[str] = Field(
        [], description="another page origin that may open /ws, e.g. https://proxy.example"
    )
    allow: list[str] = Field([], description="TCP peers only from this address or CIDR block")
    deny: list[str] = Field([], description="no TCP peers from this address or CIDR block")
    tcp_tls_cert: str | None = Field(None, description="server: TLS on the TCP port, this PEM cert")
    tcp_tls_key: str | None = Field(None, description="server: the key for --tcp-tls-cert")
    tls: bool = Field(False, description="client: speak TLS to the server (SNI from the host)")
    tls_ca: str | None = Field(None, description="client: trust this CA file (default: system CAs)")
    tls_insecure: bool = Field(
        False, description="client: do not verify the server's certificate (warns)"
    )
    http_tls_cert: str | None = Field(None, description="serve the page over HTTPS with this cert")
    http_tls_key: str | None = Field(None, description="the key for --http-tls-cert")
    ws_ping_interval: float = Field(
        20.0, gt=0, description="seconds between WebSocket pings from the server"
    )
    ws_ping_timeout: float = Field(
        20.0, gt=0, description="seconds to wait for a pong before dropping the WebSocket"
    )
    on_connect: list[str] = Field(
        [],
        description="client: text sent each time the connection is made, escapes allowed "
        "(\\r \\n \\t \\0 \\xNN \\\\); repeatable",
    )
    idle_timeout: float | None = Field(
        None, gt=0, description="close a TCP peer that has said nothing for this many seconds"
    )

    replay: int = Field(500, ge=0, description="entries a new /ws subscriber gets without ?after=")
    subscriber_queue: int = Field(
        8192, ge=1, description="frames queued for one /ws subscriber before it is closed (1013)"
    )
    write_limit: int = Field(
        1024 * 1024, ge=1024, description="bytes queued for one TCP peer before it must drain"
    )
    drain_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds a TCP peer over write_limit has to read before it is dropped",
    )
    max_text: int = Field(1024 * 1024, ge=1, description="longest text one send may carry")
    max_body: int = Field(
        1024 * 1024, ge=1024, description="largest HTTP request body; larger is 413"
    )

    @property
    def client_tls(self) -> bool:
        """The client role speaks TLS: `--tls`, or a flag that only makes sense with it."""
        return self.tls or self.tls_ca is not None or self.tls_insecure
