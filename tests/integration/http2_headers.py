"""The request headers a gRPC client sends, read from the decrypted HTTP/2 byte stream in the
TLS relay: frames are split here, and header blocks decoded by the system's libnghttp2 (HPACK,
Huffman and the connection's dynamic table), the library curl uses, through ctypes, so the
tests need no HTTP/2 package."""

from __future__ import annotations

import ctypes
import ctypes.util

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION = 0x1, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20
_INFLATE_FINAL, _INFLATE_EMIT = 0x01, 0x02


class _NV(ctypes.Structure):
    _fields_ = [  # noqa: RUF012 - ctypes' own declaration
        ("name", ctypes.POINTER(ctypes.c_uint8)),
        ("value", ctypes.POINTER(ctypes.c_uint8)),
        ("namelen", ctypes.c_size_t),
        ("valuelen", ctypes.c_size_t),
        ("flags", ctypes.c_uint8),
    ]


def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("nghttp2") or "libnghttp2.so.14"
    lib = ctypes.CDLL(name)
    lib.nghttp2_hd_inflate_new.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    lib.nghttp2_hd_inflate_del.argtypes = [ctypes.c_void_p]
    lib.nghttp2_hd_inflate_hd2.restype = ctypes.c_ssize_t
    lib.nghttp2_hd_inflate_hd2.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_NV),
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_int,
    ]
    lib.nghttp2_hd_inflate_end_headers.argtypes = [ctypes.c_void_p]
    return lib


class RequestHeaders:
    """Feed it the client's bytes of one connection, in order; `headers` collects every
    (name, value) of every request on it (into the list given, if one is)."""

    def __init__(self, headers: list[tuple[str, str]] | None = None) -> None:
        self._lib = _library()
        self._inflater = ctypes.c_void_p()
        if self._lib.nghttp2_hd_inflate_new(ctypes.byref(self._inflater)) != 0:
            raise RuntimeError("nghttp2_hd_inflate_new failed")
        self._buffer = b""
        self._preface_seen = False
        self._block = b""
        self.headers = headers if headers is not None else []

    def close(self) -> None:
        if self._inflater:
            self._lib.nghttp2_hd_inflate_del(self._inflater)
            self._inflater = ctypes.c_void_p()

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
        nv = _NV()
        flags = ctypes.c_int()
        rest = block
        while True:
            used = self._lib.nghttp2_hd_inflate_hd2(
                self._inflater, ctypes.byref(nv), ctypes.byref(flags), rest, len(rest), 1
            )
            if used < 0:
                raise RuntimeError(f"HPACK decoding failed ({used})")
            rest = rest[used:]
            if flags.value & _INFLATE_EMIT:
                name = ctypes.string_at(nv.name, nv.namelen).decode("latin-1")
                value = ctypes.string_at(nv.value, nv.valuelen).decode("latin-1")
                self.headers.append((name, value))
            if flags.value & _INFLATE_FINAL:
                self._lib.nghttp2_hd_inflate_end_headers(self._inflater)
                return
            if not flags.value & _INFLATE_EMIT and not rest:
                return
