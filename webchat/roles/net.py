"""Sockets and their rules: listening, keepalive, TLS contexts, peer networks, error words."""

from __future__ import annotations

import hashlib
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
    _load_chain(context, "TLS certificate", cert, key)
    return context


def _load_chain(context: ssl.SSLContext, what: str, cert: str, key: str | None) -> None:
    """Our own certificate (server's, or client's for mTLS); ValueError names the file."""
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        problem = _load_problem(exc)
        raise ValueError(f"cannot load the {what} {cert} (key {key}): {problem}") from None


def require_client_certs(context: ssl.SSLContext, ca: str) -> None:
    """`--tcp-tls-client-ca`: a peer must show a certificate signed by `ca` (mTLS)."""
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the client CA file {ca}: {_load_problem(exc)}") from None
    context.verify_mode = ssl.CERT_REQUIRED


def client_tls(
    ca: str | None, insecure: bool, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """Verify the server against `ca` (or the system's CAs) and its name, unless `insecure`;
    show `cert` when the server asks for a client certificate."""
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the CA file {ca}: {_load_problem(exc)}") from None
    if cert is not None:
        _load_chain(context, "client certificate", cert, key)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
}
"""The attribute names of RFC 4514, as `openssl x509 -subject` prints them."""


def tls_details(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, str | None] | None:
    """What a TLS connection is: version, cipher and the peer's certificate. The subject
    is known only for a verified certificate (Python parses no other); its SHA-256
    fingerprint always, as `openssl x509 -fingerprint -sha256` prints it."""
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    parsed = ssl_object.getpeercert() if der else None
    subject = None
    if parsed:
        subject = ",".join(
            f"{_SHORT.get(key, key)}={value}"
            for rdn in reversed(parsed.get("subject", ()))
            for key, value in rdn
        )
    return {
        "version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
        "peer_cert_subject": subject or None,
        "peer_cert_sha256": hashlib.sha256(der).hexdigest() if der else None,
    }
