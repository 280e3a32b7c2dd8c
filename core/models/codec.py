"""The codec server's wire format: Temporal `Payloads` in protobuf JSON, as the Web UI sends
them (`{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_PAYLOADS = 1000
MAX_METADATA_ENTRIES = 32

MetadataKey = Annotated[str, Field(min_length=1, max_length=256)]


class WirePayload(BaseModel):
    """One payload: metadata values and data are base64, as protobuf JSON writes bytes."""

    # Fields newer protos add (e.g. external payload references) are passed to the protobuf
    # parser, which refuses the ones it does not know rather than dropping them silently.
    model_config = ConfigDict(extra="allow")

    metadata: dict[MetadataKey, str] = Field(
        default_factory=dict, max_length=MAX_METADATA_ENTRIES, description="values in base64"
    )
    data: str = Field("", description="base64")


class CodecPayloads(BaseModel):
    """A request to, or an answer from, `/codec/encode` or `/codec/decode`."""

    payloads: list[WirePayload] = Field(max_length=MAX_PAYLOADS)
