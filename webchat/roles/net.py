"""Sockets and their rules: listening, keepalive, TLS contexts, peer networks, error words."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

BACKLOG = 4096
"""Pending connections the kernel queues; asyncio's default of 100 drops bursts of clients."""
KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 5}
"""A silent dead peer is noticed after about 2 minutes, not the system's default 2 hours."""

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def keepalive(sock: Any) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):  # not every platform has all three
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def describe_error(exc: BaseException) -> str:
    """An OSError in the words of netcat users: 'connection refused', not '[Errno 111]'."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {(exc.reason or str(exc)).replace('_', ' ').lower()}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    return str(exc) or type(exc).__name__


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening socket for either side; `::` also takes IPv4 where the OS allows."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def backoff(first: float = 0.5, cap: float = 10.0) -> Iterator[float]:
    """Reconnect delays, restarted after each success (websockets' `backoff()`)."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps a side to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def network(text: str) -> IpNetwork:
    """A CIDR block or a single address; raises ValueError with a message fit for a user."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an address or CIDR block, e.g. 10.0.0.0/8") from None


class PeerRules:
    """`--allow` / `--deny` for TCP peers, as ncat has them: a peer is refused when it is
    in a denied network, or when allowed networks are given and it is in none."""

    def __init__(self, allow: Iterable[str], deny: Iterable[str]) -> None:
        self.allow = [network(text) for text in allow]
        self.deny = [network(text) for text in deny]

    def refusal(self, host: str) -> str | None:
        """Why a peer from `host` is refused, or None to let it in."""
        if not self.allow and not self.deny:
            return None
        address: Any = ipaddress.ip_address(host.split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for net in self.deny:
            if address in net:
                return f"address in denied network {net} (--deny)"
        if self.allow and not any(address in net for net in self.allow):
            return "address not in any allowed network (--allow)"
        return None


def _load_problem(exc: OSError | ssl.SSLError) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def server_tls(cert: str, key: str | None) -> ssl.SSLContext:
    """A TLS server context from PEM files; raises ValueError naming the file and the problem."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"cannot load the TLS certificate {cert} (key {key}): {_load_problem(exc)}"
        ) from None
    return context


def client_tls(ca: str | None, insecure: bool) -> ssl.SSLContext:
    """Verify the server against `ca` (or the system's CAs) and its name, unless `insecure`."""
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the CA file {ca}: {_load_problem(exc)}") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
