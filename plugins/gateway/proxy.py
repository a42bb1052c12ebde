"""Who is really on the other end when the gateway sits behind HAProxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(trusted: Iterable[str]) -> tuple[Network, ...]:
    """The trusted proxies' networks (validated by the settings already)."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def client_address(conn: ServerConnection, trusted: tuple[Network, ...]) -> str:
    """The client's IP: the peer's, or the last untrusted hop of X-Forwarded-For when the peer is a trusted proxy.

    Walking the header from the right and skipping trusted hops means a client cannot
    choose its own address by sending a forged header through the proxy.
    """
    peer = conn.remote_address[0] if conn.remote_address else "?"
    if not trusted or conn.request is None or not _is_trusted(peer, trusted):
        return peer
    hops = [
        hop.strip() for hop in ",".join(conn.request.headers.get_all("X-Forwarded-For")).split(",")
    ]
    for hop in reversed([h for h in hops if h]):
        if not _is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return peer


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
