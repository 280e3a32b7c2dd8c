"""The codec server's work: payloads in protobuf JSON through the API's own payload codec,
the very codec its Temporal client uses (so it knows the same keys, rotations included)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from core.errors import InvalidInputError
from core.models.codec import CodecPayloads, WirePayload

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def _to_proto(index: int, wire: WirePayload) -> Payload:
    try:
        return json_format.ParseDict(wire.model_dump(), Payload())
    except json_format.ParseError as err:
        field = f"body.payloads.{index}"
        raise InvalidInputError(
            f"{field} is not a Temporal payload in protobuf JSON",
            hint="metadata values and data are base64; send what the Temporal UI sends",
            fields=[{"field": field, "message": str(err)[:300]}],
        ) from None


def _to_wire(payload: Payload) -> WirePayload:
    doc: dict[str, Any] = json_format.MessageToDict(payload)
    return WirePayload.model_validate(doc)


async def transform(client: Client, body: CodecPayloads, *, encode: bool) -> CodecPayloads:
    """`body`'s payloads encoded (encrypted) or decoded; unchanged when encryption is off."""
    codec = client.data_converter.payload_codec
    protos = [_to_proto(i, p) for i, p in enumerate(body.payloads)]
    if codec is not None and protos:
        step: Transform = codec.encode if encode else codec.decode
        protos = await step(protos)
    return CodecPayloads(payloads=[_to_wire(p) for p in protos])
