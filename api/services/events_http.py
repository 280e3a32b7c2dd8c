"""CloudEvents 1.0 over HTTP: structured mode (`application/cloudevents+json`, the event as
one JSON object) and binary mode (attributes in `ce-` headers, the data as the body), read
strictly: the four required attributes, specversion 1.0, bounded sizes. Batches are refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from api.errors import field_errors
from core.errors import InvalidInputError
from core.models.events import CONTEXT_ATTRIBUTES, CloudEvent

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
HINT = (
    "send a CloudEvents 1.0 event: structured (Content-Type: application/cloudevents+json, "
    'a JSON object with specversion "1.0", id, source and type) or binary (ce-specversion: '
    "1.0, ce-id, ce-source and ce-type headers, the data as the body); see docs/events.md"
)


MAX_DEPTH = 64


def parse_json(body: bytes, what: str, hint: str = HINT) -> Any:
    """JSON nested at most MAX_DEPTH deep: deeper data would exhaust the stacks of the
    parser, of the CEL evaluator and of the store's encoder. InvalidInputError otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInputError(f"{what} is not JSON", hint=hint) from None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInputError(f"{what} is nested more than {MAX_DEPTH} deep", hint=hint)
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return value


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _invalid(message: str, fields: list[dict[str, str]] | None = None) -> InvalidInputError:
    return InvalidInputError(message, hint=HINT, fields=fields)


def _validated(attributes: dict[str, Any], where: str) -> CloudEvent:
    try:
        return CloudEvent.model_validate(attributes)
    except ValidationError as err:
        fields = field_errors(err.errors(), (where,))
        missing = [
            f["field"].rsplit(".", 1)[-1] for f in fields if f["message"] == "Field required"
        ]
        what = f"missing {', '.join(missing)}" if missing else fields[0]["message"]
        raise _invalid(f"not a valid CloudEvent: {what}", fields) from None


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """The event a request carries; InvalidInputError (422) with a hint when it carries none."""
    media = _media_type(headers.get("content-type", ""))
    if media == BATCH:
        raise _invalid("batched CloudEvents are not accepted; send one event per request")
    if "ce-specversion" in headers:
        return _binary(headers, body, media)
    if media == STRUCTURED:
        return _structured(body)
    raise _invalid(
        f"no CloudEvent here: Content-Type {media or 'none'} without ce-specversion header"
    )


def _structured(body: bytes) -> CloudEvent:
    document = parse_json(body, "the body")
    if not isinstance(document, dict):
        raise _invalid("a structured CloudEvent is one JSON object")
    attributes = {k: v for k, v in document.items() if k in CONTEXT_ATTRIBUTES}
    attributes["data"] = document.get("data")
    attributes["data_base64"] = document.get("data_base64")
    if attributes["data"] is not None and attributes["data_base64"] is not None:
        raise _invalid("an event has data or data_base64, not both")
    others = set(document) - CONTEXT_ATTRIBUTES - {"data", "data_base64"}
    attributes["extensions"] = {k: document[k] for k in others}
    return _validated(attributes, "body")


def _binary(headers: Mapping[str, str], body: bytes, media: str) -> CloudEvent:
    attributes: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if not lowered.startswith("ce-"):
            continue
        attribute = lowered[3:]
        if attribute in CONTEXT_ATTRIBUTES:
            attributes[attribute] = value
        elif attribute in ("data", "data_base64", "datacontenttype"):
            raise _invalid(f"header {name} is not an attribute of binary mode")
        else:
            extensions[attribute] = value
    if media:
        attributes["datacontenttype"] = headers.get("content-type", "").strip()[:128]
    attributes["extensions"] = extensions
    if body:
        if media == "application/json" or media.endswith("+json"):
            attributes["data"] = parse_json(body, f"the body (Content-Type {media})")
        elif media.startswith("text/"):
            try:
                attributes["data"] = body.decode()
            except UnicodeDecodeError:
                raise _invalid("the body is not UTF-8 text") from None
        else:
            attributes["data_base64"] = base64.b64encode(body).decode()
    return _validated(attributes, "header")
