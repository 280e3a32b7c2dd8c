"""Which receivers a notification may go to: an SSRF guard. The worker POSTs to URLs an admin
wrote, so a URL must not turn it into a reader of the cloud's metadata service (169.254.169.254)
or, outside development, of services on its own host or private network."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Never a receiver: the metadata services live here (AWS, GCP, Azure: 169.254.169.254; AWS's
# IPv6 fd00:ec2::254 is private, refused with the private ones).
_ALWAYS_REFUSED = "link-local or metadata"


class UrlRefused(ValueError):
    """The URL may not receive notifications; the message says why."""


def _host_refusal(ip: IPAddress, allow_private: bool) -> str | None:
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return _ALWAYS_REFUSED
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _host_refusal(ip.ipv4_mapped, allow_private)
    if (ip.is_loopback or ip.is_private) and not allow_private:
        return "loopback or private"
    return None


def check_url(url: str, *, allow_private: bool) -> tuple[str, int]:
    """Refuse what is not an http(s) URL with a host, or names a refused address literally;
    return its host and port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise UrlRefused(f"not a URL: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("only http and https URLs receive notifications")
    host = parts.hostname
    if not host:
        raise UrlRefused("the URL names no host")
    if parts.username or parts.password:
        raise UrlRefused("credentials in the URL are refused; put a token in the path instead")
    if host in ("localhost", "localhost.localdomain") and not allow_private:
        raise UrlRefused("localhost is a loopback address, refused outside development")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and (why := _host_refusal(ip, allow_private)) is not None:
        raise UrlRefused(f"{host} is a {why} address")
    return host, port or (443 if parts.scheme == "https" else 80)


async def check_resolved(url: str, *, allow_private: bool) -> None:
    """At the edge, before each POST: every address the host resolves to must be allowed
    (a name may point at the metadata service as well as a literal can)."""
    host, port = check_url(url, allow_private=allow_private)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise OSError(f"cannot resolve {host}: {err}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if (why := _host_refusal(ip, allow_private)) is not None:
            raise UrlRefused(f"{host} resolves to {ip}, a {why} address")
