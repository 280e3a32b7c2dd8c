"""A client's request as the router holds it, and as it sends it on to an instance.

What a client says about the hops before it (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`) is
believed only when the router is told its clients are proxies of ours: otherwise anyone could
pass for any address to an application that logs or rate-limits by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from activities.infrastructure.local.router.balancer import Answer

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",  # answered by the router itself
    }
)
# Said by the client about itself: trusted only when the router is told to (see RouterLimits).
FORWARDING = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip"}
)
_DROP_UNTRUSTED = HOP_BY_HOP | FORWARDING


class Request:
    """A parsed client request; header names are lower-case. `answer` is set when the router
    has already decided the answer (a refusal), which keeps it in order behind earlier ones."""

    __slots__ = ("method", "url", "headers", "body", "keep_alive", "peer", "answer")

    def __init__(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]],
                 body: bytes, keep_alive: bool, peer: bytes) -> None:  # fmt: skip
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.peer = peer
        self.answer: Answer | None = None

    def upstream_bytes(self, trust_forwarded: bool = False) -> bytes:
        """The request as the upstream gets it: hop-by-hop headers dropped, a known length,
        and X-Forwarded-For/-Proto/-Host said by the router (the client's own replaced, or
        appended to when trusted)."""
        if trust_forwarded:
            return self._trusted_bytes()
        lines = [self.method, b" ", self.url, b" HTTP/1.1\r\n"]
        host: bytes | None = None
        for name, value in self.headers:
            if name in _DROP_UNTRUSTED:
                continue
            if name == b"host":
                host = value
            lines += [name, b": ", value, b"\r\n"]
        lines += [b"x-forwarded-for: ", self.peer, b"\r\nx-forwarded-proto: http\r\n"]
        if host is not None:
            lines += [b"x-forwarded-host: ", host, b"\r\n"]
        lines += [b"content-length: ", str(len(self.body)).encode(), b"\r\n\r\n", self.body]
        return b"".join(lines)

    def _trusted_bytes(self) -> bytes:
        lines = [self.method, b" ", self.url, b" HTTP/1.1\r\n"]
        host: bytes | None = None
        chain: list[bytes] = []
        said: set[bytes] = set()
        for name, value in self.headers:
            if name == b"x-forwarded-for":
                chain.append(value)
                continue
            if name in HOP_BY_HOP:
                continue
            if name == b"host":
                host = value
            elif name in FORWARDING:
                said.add(name)
            lines += [name, b": ", value, b"\r\n"]
        chain.append(self.peer)
        lines += [b"x-forwarded-for: ", b", ".join(chain), b"\r\n"]
        if b"x-forwarded-proto" not in said:
            lines.append(b"x-forwarded-proto: http\r\n")
        if host is not None and b"x-forwarded-host" not in said:
            lines += [b"x-forwarded-host: ", host, b"\r\n"]
        lines += [b"content-length: ", str(len(self.body)).encode(), b"\r\n\r\n", self.body]
        return b"".join(lines)
