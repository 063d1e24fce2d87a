"""Every flag, default and limit in one place, parsed and validated once.

The CLI passes only the flags a user typed; pydantic-settings fills the rest
from `WEBCHAT_<FLAG>` variables, then from these defaults. Validators turn
text into what the roles take (an address, login bytes, peer rules, TLS
contexts) and keep it, so nothing is parsed twice. Limits that have no flag
yet still live here, so there is one answer to "how big can it get".
"""

from __future__ import annotations

import ssl

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from webchat.framing import FLUSH_AFTER
from webchat.model import split_host_port
from webchat.notation import unescape
from webchat.roles.net import PeerRules, client_tls, network, require_client_certs, server_tls
from webchat.roles.peer import PeerOptions
from webchat.types import FramingName, RoleName, StartTlsName

SQLITE = "sqlite:///"
STORE_SCHEMES = ("redis://", "rediss://", SQLITE)


class Unusable(ValueError):
    """A well-formed value that cannot be used here (a file that does not load, an
    address without a port): the CLI exits 1 for these and 2 for malformed flags."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBCHAT_", frozen=True, extra="forbid")

    role: RoleName = "server"
    tcp_host: str = Field("127.0.0.1", description="address the TCP server listens on")
    tcp_port: int = Field(9000, ge=0, le=65535, description="TCP server port (0 picks a free one)")
    connect: str | None = Field(None, description="HOST:PORT the TCP client connects to")
    http_host: str = Field("127.0.0.1", description="address the page and API listen on")
    http_port: int = Field(8000, ge=0, le=65535, description="HTTP port (0 picks a free one)")
    max_clients: int = Field(0, ge=0, description="TCP clients at once; 0 means no limit")
    relay: bool = Field(False, description="also write each peer's message to every other peer")
    chat: bool = Field(
        False,
        description="server: a chat room, as ncat --chat: each line goes to the others as "
        "<name> text; peers are user<N> until /nick NAME; joins, leaves and renames announced "
        "(view: the room is one: a page's sends go out as <name> text)",
    )
    framing: FramingName = Field(
        "line",
        description="line: up to LF (sends LF); crlf: up to LF (sends CRLF); raw: each chunk "
        "as it came; nul: up to NUL; len16/len32: big-endian length prefix",
    )
    max_line: int = Field(
        65536, ge=1, le=16 * 1024 * 1024, description="longest message in bytes; longer is split"
    )
    flush_after: float | None = Field(
        None,
        ge=0,
        description="seconds of silence after which a partial line is delivered as it is; "
        "0 waits for the terminator or the close (default: 0.2 for line framing, else 0)",
    )
    db: str | None = Field(
        None,
        description="transcript file; :memory: keeps nothing (default: one file per endpoint "
        "in the user data directory)",
    )
    store: str | None = Field(
        None,
        description="where the transcript lives: redis://[:PASSWORD@]HOST:PORT/DB (or "
        "rediss:// for TLS) shares one room between instances; sqlite:///PATH is --db PATH",
    )
    room: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="with --store redis://: the room's name; its keys are webchat:ROOM:*",
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
    view_token: str | None = Field(
        None,
        min_length=8,
        description="a second token that may only watch: the page, the transcript and the "
        "live log, never send or change anything (403); implies a --token",
    )
    no_auth: bool = Field(False, description="no token even off loopback (prints a warning)")
    allow_origin: list[str] = Field(
        [], description="another page origin that may open /ws, e.g. https://proxy.example"
    )
    allow_host: list[str] = Field(
        [],
        description="another name the page is reached by (its Host header), e.g. webchat.lan; "
        "without a token, names other than loopback and --http-host are refused (403)",
    )
    allow: list[str] = Field([], description="TCP peers only from this address or CIDR block")
    deny: list[str] = Field([], description="no TCP peers from this address or CIDR block")
    tcp_tls_cert: str | None = Field(None, description="server: TLS on the TCP port, this PEM cert")
    tcp_tls_key: str | None = Field(None, description="server: the key for --tcp-tls-cert")
    tls: bool = Field(False, description="client: speak TLS to the server (SNI from the host)")
    tls_ca: str | None = Field(None, description="client: trust this CA file (default: system CAs)")
    starttls: StartTlsName | None = Field(
        None,
        description="client: connect in plain text, say what the protocol needs, then TLS on "
        "the same connection (smtp, imap, pop3, xmpp, irc; plain: when POST "
        "/api/connection/starttls or the page says so); verified as --tls-ca etc. say",
    )
    tls_cert: str | None = Field(
        None, description="client: show this PEM certificate when the server asks (mTLS)"
    )
    tls_key: str | None = Field(None, description="client: the key for --tls-cert")
    tcp_tls_client_ca: str | None = Field(
        None,
        description="server: require TLS peers to show a certificate signed by this CA (mTLS)",
    )
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
    half_close_linger: float = Field(
        10.0,
        gt=0,
        description="server: a TCP peer that finished sending (half-close) stays open for "
        "replies this many seconds after our last write",
    )
    echo: bool = Field(
        False, description="answer every line with itself: an echo server (rule 0 in /api/rules)"
    )
    telnet: bool = Field(
        False,
        description="speak telnet: refuse every option offered (as ncat -t), keep IAC "
        "sequences out of the text, end lines at CR LF and CR NUL, send CRLF in line framing",
    )
    no_half_close: bool = Field(
        False, description="server: take a TCP peer's half-close as a close, as webchat 0.1 did"
    )

    replay: int = Field(500, ge=0, description="entries a new /ws subscriber gets without ?after=")
    write_limit: int = Field(
        1024 * 1024, ge=1024, description="bytes queued for one TCP peer before it must drain"
    )
    drain_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds a TCP peer over write_limit has to read before it is dropped",
    )
    max_text: int = Field(1024 * 1024, ge=1, description="longest text one send may carry")
    max_send: int = Field(
        64 * 1024 * 1024,
        ge=1,
        description="largest file POST /api/messages/file (or the page's Send file) may send",
    )
    max_body: int = Field(
        1024 * 1024, ge=1024, description="largest HTTP request body; larger is 413"
    )

    _target: tuple[str, int] | None = PrivateAttr(None)
    _greeting: list[bytes] = PrivateAttr(default_factory=list)
    _rules: PeerRules = PrivateAttr(default_factory=lambda: PeerRules((), ()))
    _tcp_tls: ssl.SSLContext | None = PrivateAttr(None)
    _client_tls: ssl.SSLContext | None = PrivateAttr(None)

    @field_validator("connect")
    @classmethod
    def _has_port(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                split_host_port(value)
            except ValueError as exc:
                raise Unusable(str(exc)) from None
        return value

    @field_validator("on_connect")
    @classmethod
    def _escapes(cls, value: list[str]) -> list[str]:
        for text in value:
            unescape(text)
        return value

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            network(text)
        return value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(STORE_SCHEMES):
            raise ValueError(
                "--store takes redis://HOST:PORT/DB, rediss://HOST:PORT/DB or sqlite:///PATH"
            )
        return value

    @model_validator(mode="after")
    def _parsed(self) -> Settings:
        if self.store is not None and self.store.startswith(SQLITE) and self.db is not None:
            raise ValueError("--store sqlite:///PATH and --db PATH say the same: give one")
        if self.redis_url is not None and (self.db is not None or self.fsync):
            raise ValueError("--db and --fsync are for a transcript file, not --store redis://")
        if self.role == "view" and self.redis_url is None:
            raise ValueError(
                "webchat view shows a room that server or client instances share: "
                "give --store redis://HOST:PORT/DB (or WEBCHAT_STORE)"
            )
        if self.role == "client" and self.connect is None:
            raise ValueError("the client role needs --connect HOST:PORT (or WEBCHAT_CONNECT)")
        if self.starttls is not None and self.tls:
            raise ValueError(
                "--tls is TLS from the first byte, --starttls upgrades later: choose one"
            )
        if self.tcp_tls_client_ca and not self.tcp_tls_cert:
            raise ValueError(
                "--tcp-tls-client-ca needs --tcp-tls-cert: client certificates are TLS"
            )
        for key, cert in (
            ("tcp_tls", self.tcp_tls_cert),
            ("http_tls", self.http_tls_cert),
            ("tls", self.tls_cert),
        ):
            if getattr(self, f"{key}_key") and not cert:
                flag = key.replace("_", "-")
                raise ValueError(f"--{flag}-key needs --{flag}-cert")
        try:
            if self.tcp_tls_cert:
                self._tcp_tls = server_tls(self.tcp_tls_cert, self.tcp_tls_key)
                if self.tcp_tls_client_ca:
                    require_client_certs(self._tcp_tls, self.tcp_tls_client_ca)
            if self.http_tls_cert:
                server_tls(self.http_tls_cert, self.http_tls_key)
            if self.speaks_tls or self.starttls is not None:
                self._client_tls = client_tls(
                    self.tls_ca, self.tls_insecure, self.tls_cert, self.tls_key
                )
        except ValueError as exc:
            raise Unusable(str(exc)) from None
        self._target = split_host_port(self.connect) if self.connect else None
        self._greeting = [unescape(text) for text in self.on_connect]
        self._rules = PeerRules(self.allow, self.deny)
        return self

    @property
    def speaks_tls(self) -> bool:
        """The client role speaks TLS from the first byte: `--tls`, or a flag that only makes
        sense with TLS, unless `--starttls` makes it a later upgrade."""
        if self.starttls is not None:
            return False
        return self.tls or self.tls_ca is not None or self.tls_insecure or bool(self.tls_cert)

    @property
    def redis_url(self) -> str | None:
        """`--store redis://...` or `rediss://...`; None for a transcript file."""
        if self.store is None or self.store.startswith(SQLITE):
            return None
        return self.store

    @property
    def transcript_file(self) -> str | None:
        """`--db`, or the path of `--store sqlite:///PATH`."""
        if self.store is not None and self.store.startswith(SQLITE):
            return self.store[len(SQLITE) :]
        return self.db

    @property
    def upgrade(self) -> tuple[StartTlsName, ssl.SSLContext] | None:
        """`--starttls` and the context its handshake uses."""
        if self.starttls is None or self._client_tls is None:
            return None
        return self.starttls, self._client_tls

    @property
    def peer_options(self) -> PeerOptions:
        """What every TCP peer of the role is told; `--flush-after 0` means never."""
        delay = FLUSH_AFTER.get(self.framing) if self.flush_after is None else self.flush_after
        return PeerOptions(
            framing=self.framing,
            max_line=self.max_line,
            write_limit=self.write_limit,
            drain_timeout=self.drain_timeout,
            idle_timeout=self.idle_timeout,
            flush_after=delay or None,
            telnet=self.telnet,
            chat=self.chat and self.role in ("server", "view"),
            half_close_linger=(
                None if self.no_half_close or self.role == "client" else self.half_close_linger
            ),
        )

    @property
    def target(self) -> tuple[str, int]:
        """The client role's `--connect`, as host and port."""
        if self._target is None:
            raise ValueError("the client role needs --connect HOST:PORT")
        return self._target

    @property
    def greeting(self) -> list[bytes]:
        """`--on-connect`, as the bytes to send."""
        return self._greeting

    @property
    def rules(self) -> PeerRules:
        return self._rules

    @property
    def tcp_tls(self) -> ssl.SSLContext | None:
        return self._tcp_tls

    @property
    def client_tls(self) -> ssl.SSLContext | None:
        """The context of TLS from the first byte; STARTTLS's is in `upgrade`."""
        return self._client_tls if self.speaks_tls else None
