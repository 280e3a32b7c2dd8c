"""`/codec`: the codec server the Temporal Web UI calls to show (`/codec/decode`) and to send
(`/codec/encode`) payloads, which Temporal itself only ever holds encrypted. Same API keys as
the rest of the API (viewer or above); CORS for the UI's origin is in `api.codec_cors`."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import Viewer
from api.deps import GatewayDep
from api.services.codec import transform
from core.models.codec import CodecPayloads

router = APIRouter(prefix="/codec", tags=["codec"])


@router.post("/decode", response_model=CodecPayloads, response_model_exclude_unset=True)
async def decode(body: CodecPayloads, _: Viewer, gateway: GatewayDep) -> CodecPayloads:
    """Decrypt payloads (those not encrypted come back unchanged). 422 names the key of a
    payload that cannot be decrypted: unknown here, or altered."""
    return await transform(gateway.client, body, encode=False)


@router.post("/encode", response_model=CodecPayloads, response_model_exclude_unset=True)
async def encode(body: CodecPayloads, _: Viewer, gateway: GatewayDep) -> CodecPayloads:
    """Encrypt payloads with the current key, as a client of this system would."""
    return await transform(gateway.client, body, encode=True)
