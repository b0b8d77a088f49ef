"""Where a webhook may be sent: https to a public address. A URL whose host resolves to a
private, loopback, link-local or otherwise reserved address is refused (a key must not make
the server call into its own network), unless that address is in the settings' allow-list
(`webhooks_allowed_networks`: tests and `kinfolk dev` allow loopback), which also admits http.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# What `kinfolk dev` and the tests allow: receivers on this machine.
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")

# How long a host may take to resolve when the caller does not say: the default time of a whole
# delivery attempt (`webhooks_timeout_seconds`), so registering an endpoint waits no longer.
RESOLVE_TIMEOUT_SECONDS = 15.0


class UrlRefused(ValueError):
    """Why a URL may not be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]  # what the host resolved to: the ones to connect to


def networks(allowed: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allowed)


def _public(address: IpAddress) -> bool:
    return address.is_global and not address.is_multicast


async def _resolve(host: str, port: int, timeout_seconds: float) -> list[str]:
    # getaddrinfo runs in a thread, on the system resolver's own timeouts and retries, which
    # can add up to far longer than anyone waits; a host that does not resolve in time is
    # refused as one that does not resolve at all.
    try:
        async with asyncio.timeout(timeout_seconds):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except socket.gaierror as exc:
        raise UrlRefused(f"The host {host!r} does not resolve ({exc.strerror}).") from exc
    except TimeoutError as exc:
        raise UrlRefused(
            f"The host {host!r} did not resolve within {timeout_seconds:g} s."
        ) from exc
    return sorted({str(info[4][0]) for info in infos})


async def check_url(
    url: str,
    allowed: Sequence[Network],
    *,
    resolve_timeout_seconds: float = RESOLVE_TIMEOUT_SECONDS,
) -> Target:
    """The URL's target if it may be called; `UrlRefused` saying why otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UrlRefused("Use an absolute https:// URL.")
    if parts.username or parts.password:
        raise UrlRefused("Credentials in the URL are not allowed; use custom headers.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused("The URL's port is not a number from 1 to 65535.") from exc
    addresses = await _resolve(parts.hostname, port, resolve_timeout_seconds)
    parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    permitted = [any(a in network for network in allowed) for a in parsed]
    for address, in_list in zip(parsed, permitted, strict=True):
        if not in_list and not _public(address):
            raise UrlRefused(
                f"{parts.hostname} resolves to {address}, a private, loopback or reserved "
                "address; webhooks go to public addresses only (an operator may allow a "
                "network with KINFOLK_WEBHOOKS_ALLOWED_NETWORKS)."
            )
    if parts.scheme == "http" and not all(permitted):
        raise UrlRefused("Use https://; http is allowed only to networks the operator allows.")
    return Target(url=url, host=parts.hostname, port=port, addresses=tuple(addresses))
