"""Flags into `Settings`, sockets bound up front, then `runner` serves.

Both listeners are bound and the transcript opened before anything starts,
so a busy port, a host that does not resolve or an unusable file is one line
and exit 1 rather than a lifespan traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import socket
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
import pydantic
from click.core import ParameterSource

from webchat.commands import export_command, transcripts_command
from webchat.model import peer_name
from webchat.roles.net import bind_listener, describe_error, is_loopback
from webchat.room.autoreply import load_rules
from webchat.runner import NotStarted, loop_factory, serve
from webchat.settings import Settings, Unusable
from webchat.store import Store, StoreError
from webchat.types import FRAMING_NAMES, STARTTLS_NAMES
from webchat.web.runtime import open_transcript, rules_path

USAGE_ERROR = 2
RUN_ERROR = 1


def fail(message: str, code: int = RUN_ERROR) -> NoReturn:
    click.echo(f"webchat: error: {message}", err=True)
    sys.exit(code)


class Port(click.ParamType):  # type: ignore[type-arg]
    """A port number, with a message that says what one is."""

    name = "port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        text = str(value)
        if text.isascii() and text.isdigit() and int(text) <= 65535:
            return int(text)
        self.fail(f"{value!r} is not a port: give a number from 0 to 65535 (0 picks a free one)")


def option(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option whose help and default come from the `Settings` field of the same name."""
    field = Settings.model_fields[name]
    flag = "--" + name.replace("_", "-")
    text = field.description or ""
    if field.annotation is bool:
        return click.option(flag, name, is_flag=True, help=text)
    if field.default not in (None, []):
        text += f"  [default: {field.default}; env WEBCHAT_{name.upper()}]"
    return click.option(flag, name, help=text, **kwargs)


http_options = [
    option("http_host", metavar="HOST"),
    option("http_port", type=Port(), metavar="PORT"),
    option("token", metavar="TOKEN"),
    option("view_token", metavar="TOKEN"),
    option("no_auth"),
    option("allow_origin", metavar="ORIGIN", multiple=True),
    option("allow_host", metavar="NAME", multiple=True),
    option("http_tls_cert", metavar="FILE"),
    option("http_tls_key", metavar="FILE"),
    option("ws_ping_interval", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS"),
    option("ws_ping_timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS"),
]
common_options = [
    option("framing", type=click.Choice(FRAMING_NAMES)),
    option("max_line", type=click.IntRange(1, 16 * 1024 * 1024), metavar="BYTES"),
    option("flush_after", type=click.FloatRange(min=0), metavar="SECONDS"),
    option("telnet"),
    option("echo"),
    option("max_history", type=click.IntRange(1), metavar="N"),
    option("max_send", type=click.IntRange(1), metavar="BYTES"),
    option("db", metavar="PATH"),
    option("store", metavar="URL"),
    option("room", metavar="NAME"),
    option("fsync"),
    option("idle_timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS"),
    option("quiet"),
]


def apply(options: list[Callable[[Callable[..., Any]], Callable[..., Any]]]) -> Callable[..., Any]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for add in reversed(options):
            func = add(func)
        return func

    return decorate


def typed(**params: Any) -> dict[str, Any]:
    """Only the flags given on the command line, so WEBCHAT_* fills the rest."""
    ctx = click.get_current_context()
    return {
        k: v
        for k, v in params.items()
        if ctx.get_parameter_source(k) is ParameterSource.COMMANDLINE
    }


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(package_name="webchat")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Talk to raw TCP from a browser: a TCP server or client bridged to a web page."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@cli.command()
@option("tcp_host", metavar="HOST")
@option("tcp_port", type=Port(), metavar="PORT")
@apply(http_options)
@option("max_clients", type=click.IntRange(0), metavar="N")
@option("relay")
@option("chat")
@option("allow", metavar="CIDR", multiple=True)
@option("deny", metavar="CIDR", multiple=True)
@option("tcp_tls_cert", metavar="FILE")
@option("tcp_tls_key", metavar="FILE")
@option("tcp_tls_client_ca", metavar="FILE")
@option("half_close_linger", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS")
@option("no_half_close")
@apply(common_options)
def server(**params: Any) -> None:
    """Listen for TCP clients and bridge them to the page (nc 127.0.0.1 9000 talks to it)."""
    run(load(role="server", **typed(**params)))


@cli.command()
@option("connect", metavar="HOST:PORT")
@option("on_connect", metavar="TEXT", multiple=True)
@option("tls")
@option("tls_ca", metavar="FILE")
@option("starttls", type=click.Choice(STARTTLS_NAMES))
@option("tls_cert", metavar="FILE")
@option("tls_key", metavar="FILE")
@option("tls_insecure")
@apply(http_options)
@apply(common_options)
def client(**params: Any) -> None:
    """Connect to a TCP server, reconnecting forever, and bridge it to the page."""
    run(load(role="client", **typed(**params)))


@cli.command()
@apply(http_options)
@option("store", metavar="URL")
@option("room", metavar="NAME")
@option("chat")
@option("quiet")
def view(**params: Any) -> None:
    """The page and API of a room that other instances share (--store redis://), with no
    TCP side: for many pages; its sends reach the room's peers through the stream."""
    run(load(role="view", **typed(**params)))


cli.add_command(export_command)
cli.add_command(transcripts_command)


def load(**given: Any) -> Settings:
    """Settings, or one line: exit 2 for a malformed value, 1 for one that cannot be used."""
    try:
        settings = Settings(**given)
    except pydantic.ValidationError as exc:
        fail(*describe_invalid(exc.errors()[0]))
    if settings.tls_insecure:
        click.echo(
            "webchat: warning: --tls-insecure: the server's certificate is not checked; "
            "anyone on the path can read and change the traffic",
            err=True,
        )
    return settings


def describe_invalid(error: Any) -> tuple[str, int]:
    """A pydantic error as the flag it is about, and the exit code."""
    where = ".".join(str(part) for part in error["loc"][:1])
    cause = error.get("ctx", {}).get("error")
    code = RUN_ERROR if isinstance(cause, Unusable) else USAGE_ERROR
    if not where:
        return str(cause or error["msg"]), code
    flag = "--" + where.replace("_", "-")
    if isinstance(cause, ValueError):
        return f"{flag} {cause}", code
    return f"{where}: {error['msg']} (check {flag} or WEBCHAT_{where.upper()})", code


def guarded(settings: Settings) -> tuple[Settings, bool]:
    """Off loopback, a token unless --no-auth says otherwise (as Jupyter does); True when
    the token was made here, so the start-up line may show it."""
    if settings.token is None and settings.view_token is not None:
        return settings.model_copy(update={"token": secrets.token_urlsafe(24)}), True
    if is_loopback(settings.http_host) or settings.token is not None:
        return settings, False
    if settings.no_auth:
        click.echo(
            f"webchat: warning: --no-auth on {settings.http_host}: anyone who can reach this "
            "port can read the transcript and write to your TCP peers",
            err=True,
        )
        return settings, False
    return settings.model_copy(update={"token": secrets.token_urlsafe(24)}), True


def listen(side: str, host: str, port: int, flags: str) -> socket.socket:
    """Bind, or one line that names the likely mistake (`flags` is `tcp` or `http`)."""
    host_flag, port_flag = f"--{flags}-host", f"--{flags}-port"
    name, _, given = host.rpartition(":")
    if host.count(":") == 1 and given.isdigit():  # IPv6 has more than one colon
        fail(
            f"{host_flag} {host}: give the port on its own: {host_flag} {name} {port_flag} {given}",
            USAGE_ERROR,
        )
    try:
        return bind_listener(host, port)
    except OSError as exc:
        why = describe_error(exc)
        fail(f"cannot listen for {side} on {host}:{port}: {why} ({remedy(exc, host, flags)})")


def remedy(exc: OSError, host: str, flags: str) -> str:
    """What to do about a failed bind, from its errno."""
    host_flag, port_flag = f"--{flags}-host", f"--{flags}-port"
    if isinstance(exc, socket.gaierror):
        return f"check {host_flag}: a name or an address of this machine"
    return {
        errno.EADDRINUSE: f"choose another {port_flag}, or 0 for a free one",
        errno.EADDRNOTAVAIL: f"{host} is not an address of this machine: use 127.0.0.1, "
        "0.0.0.0 or one of its own addresses",
        errno.EACCES: f"ports below 1024 need root: choose another {port_flag}",
    }.get(exc.errno or 0, f"check {host_flag} and {port_flag}")


def resolve(settings: Settings) -> None:
    host, port = settings.target
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        fail(f"--connect {settings.connect}: {describe_error(exc)}")


def describe_start(
    settings: Settings, http: socket.socket, tcp: socket.socket | None, store: Store, shown: bool
) -> str:
    host, port = http.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    scheme = "https" if settings.http_tls_cert else "http"
    page = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/"
    view = ""
    if settings.view_token is not None:
        view = f"; view-only page at {page}?token={settings.view_token}"
    if settings.token is not None:
        page += f"?token={settings.token}" if shown else " (token required)"
    if settings.role == "view":
        what = f"viewer of {'chat ' if settings.chat else ''}room {settings.room}"
        return f"webchat: page at {page} - {what}, transcript in {store.where}{view}"
    if tcp is not None:
        relay = " (chat room)" if settings.chat else " (relay on)" if settings.relay else ""
        tls = " with TLS" if settings.tcp_tls_cert else ""
        tls += " (client certificates required)" if settings.tcp_tls_client_ca else ""
        what = f"TCP server on {peer_name(*tcp.getsockname()[:2])}{tls}{relay}"
    else:
        tls = " with TLS" if settings.speaks_tls else ""
        tls += f" (STARTTLS {settings.starttls})" if settings.starttls else ""
        what = f"TCP client to {settings.connect}{tls}"
    delay = settings.peer_options.flush_after
    partial = f"partial lines after {delay:g} s" if delay else "partial lines wait"
    if settings.telnet:
        partial += ", telnet"
    return (
        f"webchat: page at {page} - {what}, {settings.framing} framing ({partial}), "
        f"transcript in {store.where}{view}"
    )


def run(settings: Settings) -> None:
    settings, shown = guarded(settings)
    tcp = None
    if settings.role == "server":
        tcp = listen("TCP", settings.tcp_host, settings.tcp_port, "tcp")
    elif settings.role == "client":
        resolve(settings)
    http = listen("HTTP", settings.http_host, settings.http_port, "http")
    try:
        load_rules(rules_path(settings, tcp))
        store = open_transcript(settings, tcp)
    except StoreError as exc:
        fail(str(exc))
    click.echo(describe_start(settings, http, tcp, store, shown))
    sys.stdout.flush()
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=loop_factory(settings)) as runner,
    ):
        try:
            runner.run(serve(settings, http, tcp, store))
        except NotStarted as exc:
            fail(str(exc))


def main() -> None:
    """Entry point: click's usage errors become one line and exit 2, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.UsageError as exc:
        hint = (
            f" (see webchat {exc.ctx.command.name} --help)"
            if exc.ctx and exc.ctx.command.name != "cli"
            else " (see webchat --help)"
        )
        fail(exc.format_message().splitlines()[0] + hint, USAGE_ERROR)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
