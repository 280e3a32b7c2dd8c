"""The request headers a gRPC client sends, read from the decrypted HTTP/2 byte stream in the
TLS relay: frames are split here, and header blocks decoded by `hpack` (HPACK, Huffman and
the connection's dynamic table), the header codec of the Python HTTP/2 stack."""

from __future__ import annotations

import logging

from hpack import Decoder

# hpack logs every header it decodes at DEBUG, the API key included: the tests that look for
# that key in every log record would find the relay's own decoding, not a leak of ours.
logging.getLogger("hpack").setLevel(logging.WARNING)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION = 0x1, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20


class RequestHeaders:
    """Feed it the client's bytes of one connection, in order; `headers` collects every
    (name, value) of every request on it (into the list given, if one is)."""

    def __init__(self, headers: list[tuple[str, str]] | None = None) -> None:
        # One decoder per connection: HPACK's dynamic table spans the connection's requests.
        self._decoder = Decoder()
        self._buffer = b""
        self._preface_seen = False
        self._block = b""
        self.headers = headers if headers is not None else []

    def close(self) -> None:
        """Nothing to free; kept so the relay can close every reader alike."""

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._preface_seen:
            if len(self._buffer) < len(PREFACE):
                return
            assert self._buffer.startswith(PREFACE), "not an HTTP/2 client"
            self._buffer = self._buffer[len(PREFACE) :]
            self._preface_seen = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                return
            kind, flags = self._buffer[3], self._buffer[4]
            payload = self._buffer[9 : 9 + length]
            self._buffer = self._buffer[9 + length :]
            if kind == _HEADERS:
                if flags & _PADDED:
                    pad = payload[0]
                    payload = payload[1 : len(payload) - pad]
                if flags & _PRIORITY:
                    payload = payload[5:]
                self._block = payload
            elif kind == _CONTINUATION:
                self._block += payload
            else:
                continue
            if flags & _END_HEADERS:
                self._inflate(self._block)
                self._block = b""

    def _inflate(self, block: bytes) -> None:
        for name, value in self._decoder.decode(block, raw=True):
            self.headers.append((bytes(name).decode("latin-1"), bytes(value).decode("latin-1")))
