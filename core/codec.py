"""AES-256-GCM encryption of every Temporal payload (inputs, results, activity arguments, memos,
query answers, failures' details): what the Temporal server stores is ciphertext.

The shape follows Temporal's encryption sample, so its codec servers and other SDKs' samples
read ours: the encrypted payload's `data` is a 96-bit random nonce followed by the AES-GCM
ciphertext of the serialised original payload; its metadata says `encoding: binary/encrypted`
and `encryption-key-id: <id>`. Unlike the sample, the key id is also the GCM associated data,
so a payload whose metadata was pointed at another key fails authentication instead of being
decrypted under the wrong name, and any key of the ring decrypts (rotation keeps old keys).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from core.errors import R2CError
from core.payload_keys import PayloadKey

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12  # 96 bits, the size GCM is specified for


class PayloadDecryptionError(R2CError):
    """An encrypted payload that cannot be decrypted: its key is unknown here, or it was
    altered. The message names the key id, never key material."""

    error_type = "PayloadDecryptionError"
    http_status = 422


class KeySource(Protocol):
    """Where the codec finds keys: the current one to encrypt with, any one by id to decrypt."""

    def current(self) -> PayloadKey: ...

    def find(self, key_id: str) -> PayloadKey | None: ...


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


class EncryptionCodec(PayloadCodec):
    """Encrypts with the current key; decrypts with whichever key the payload names, and lets
    unencrypted payloads (histories recorded before encryption) through unchanged."""

    def __init__(self, keys: KeySource) -> None:
        super().__init__()
        self._keys = keys
        self._ciphers: dict[str, AESGCM] = {}

    def _cipher(self, key: PayloadKey) -> AESGCM:
        cipher = self._ciphers.get(key.id)
        if cipher is None:
            cipher = self._ciphers[key.id] = AESGCM(key.secret)
        return cipher

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key = self._keys.current()
        cipher = self._cipher(key)
        key_id = key.id.encode()
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id)
            encoded.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decode_one(p) if is_encrypted(p) else p for p in payloads]

    def _decode_one(self, payload: Payload) -> Payload:
        raw_id = payload.metadata.get(KEY_ID, b"")
        key_id = raw_id.decode("utf-8", errors="replace")[:100]
        key = self._keys.find(key_id)
        if key is None:
            raise PayloadDecryptionError(
                f"this payload was encrypted with key {key_id!r}, which is not in the key ring",
                hint="copy the payload key file (R2C_HOME/payload-keys.json) of the system that"
                " wrote it; rotation keeps old keys, so it must still hold this one",
                key_id=key_id,
            )
        data = payload.data
        try:
            plain = self._cipher(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], raw_id)
            return Payload.FromString(plain)
        except (InvalidTag, ValueError):
            # ValueError: shorter than a nonce, or bytes that are no Payload once decrypted.
            raise PayloadDecryptionError(
                f"the payload under key {key_id!r} fails authentication: it was altered or"
                " damaged after encryption",
                hint="nothing can recover it; check what changed the history",
                key_id=key_id,
            ) from None
