"""The dashboard's own OpenAPI document, served at /ui/openapi.json.

The dashboard's routes are not API operations (they answer HTML, take a session cookie and a
CSRF token), so they are not in the API's document; this one describes them the same way:
every status each route can answer, by what the route is (signed in or not, a POST, path,
query or form parameters) plus what its handler adds (`EXTRAS`). A route can also declare
statuses itself (`responses=` on its decorator: the SAML routes may). The walk in
tests/integration/test_dashboard_contract.py provokes each route's statuses against the real
app and fails on one that is not here, and on a route that has no entry in `KINDS`.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI
from fastapi._compat import ModelField
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from api.ui import csrf

SESSION_SCHEME = "session"
COOKIE = "r2c_session"
HTML = "text/html"
JSON = "application/json"
Access = Literal["public", "signed-in"]


@dataclass(frozen=True)
class Doc:
    """What a route answers beyond what its shape implies."""

    access: Access
    ok: dict[int, str | None]  # success and redirect statuses, with their content type
    extras: frozenset[int] = field(default_factory=frozenset)
    csrf: bool = False  # a POST that needs the session's CSRF token


def _doc(access: Access, ok: dict[int, str | None], *extras: int, csrf: bool = False) -> Doc:
    return Doc(access, ok, frozenset(extras), csrf)


UNKNOWN = _doc("public", {200: HTML, 303: None})

# (method, path inside /ui) -> what the route answers. A route missing here fails the
# contract test: a new route says what it answers before it ships.
KINDS: dict[tuple[str, str], Doc] = {
    ("GET", "/openapi.json"): _doc("public", {200: JSON}),
    ("GET", "/"): _doc("public", {303: None}),
    # Signed in already: on to `next`.
    ("GET", "/login"): _doc("public", {200: HTML, 303: None}),
    ("POST", "/login/key"): _doc("public", {303: None}, 401, 429, csrf=True),
    ("POST", "/logout"): _doc("public", {303: None}, csrf=True),
    # 302 to the issuer; 400 when OIDC is not configured; 401 when the issuer refuses its
    # discovery; 503 when the issuer cannot be reached.
    ("GET", "/login/oidc"): _doc("public", {302: None}, 400, 401),
    # 401: no pending sign-in, another browser's state, a refused code or token.
    ("GET", "/callback"): _doc("public", {303: None}, 401),
    ("GET", "/components"): _doc("signed-in", {200: HTML}),
    ("GET", "/deployments"): _doc("signed-in", {200: HTML}),
    ("GET", "/deployments/{deployment_id}"): _doc("signed-in", {200: HTML}, 403),
    ("GET", "/deployments/{deployment_id}/events"): _doc(
        "signed-in", {200: "text/event-stream"}, 403
    ),
    ("GET", "/deployments/{deployment_id}/traffic"): _doc("signed-in", {200: JSON}, 403),
    # 200 (JSON) when the request accepts JSON (the page's fetch), else 303 back to the page;
    # 409: the deployment's state does not allow the action; 502: Temporal failed it.
    ("POST", "/deployments/{deployment_id}/actions/{action}"): _doc(
        "signed-in", {200: JSON, 303: None}, 409, 502, csrf=True
    ),
    # SAML 2.0 (api/ui/saml.py): 404 while SAML is not configured.
    ("GET", "/saml/login"): _doc("public", {303: None}, 404),
    ("GET", "/saml/metadata"): _doc("public", {200: "application/samlmetadata+xml"}, 404),
    # The identity provider's POST: its signature and InResponseTo stand in for a CSRF token.
    ("POST", "/saml/acs"): _doc("public", {303: None}, 400, 401, 404),
}

DESCRIPTIONS = {
    200: "the page (or the data, or the stream)",
    302: "on to the identity provider's sign-in",
    303: "redirect: after a form (to the page it changed, or to where the sign-in was going), "
    "or to /ui/login?next=... when not signed in (the dashboard's 401)",
    400: "the request cannot be served as sent (a sign-in method that is not configured, an "
    "unreadable answer; on a POST, a Content-Length that is not a number: JSON, from the "
    "API's request guard)",
    401: "the sign-in failed: an invalid key, a refused or foreign answer of the identity "
    "provider (the page says which)",
    403: "no CSRF token, or another session's; the person's role is below the action's, or the "
    "target is out of their scope (audited as auth.denied)",
    404: "the deployment named in the path does not exist (or the feature is not configured)",
    409: "the deployment's current state does not allow the action",
    413: "the body is over R2C_MAX_BODY_BYTES (JSON, from the API's request guard)",
    422: "invalid parameters or form fields (the page names them)",
    429: "too many failed sign-ins from this address or key: wait and retry",
    502: "Temporal failed the action",
    503: "the store, Temporal or the identity provider cannot be reached right now",
}


def ui_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every route the dashboard serves, included routers too."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path is not None:
            found += [(m, context.path, route) for m in sorted(route.methods or ())]
    return found


def statuses(method: str, path: str, route: APIRoute) -> dict[int, tuple[str, ...]]:
    """Every status the route can answer, with its content types (none: a redirect)."""
    # A route not (yet) in KINDS is documented by its shape alone; the contract test fails on
    # it, the served document does not.
    doc = KINDS.get((method, path), UNKNOWN)
    found: dict[int, str | None] = dict(doc.ok)
    errors = set(doc.extras)
    if path not in ("/openapi.json", "/"):
        errors.add(503)  # sessions live in the store (or Redis)
    if doc.access == "signed-in":
        found.setdefault(303, None)  # not signed in: to the sign-in page
    if doc.csrf:
        errors.add(403)
    dependant = route.dependant
    if dependant.path_params:
        errors.add(404)
    params = [(p, False) for p in dependant.path_params] + [
        (p, True) for p in dependant.query_params + dependant.header_params
    ]
    if route.body_field is not None or any(_validated(p, may_miss) for p, may_miss in params):
        errors.add(422)
    for declared in route.responses:
        errors.add(int(declared))
    for status in errors:
        found.setdefault(status, HTML)  # errors are the dashboard's error page
    contents = {status: (content,) if content else () for status, content in found.items()}
    if method == "POST":
        # The API's request guard (api/guard.py) answers before the dashboard, in JSON: a body
        # over R2C_MAX_BODY_BYTES, a Content-Length that is not a number.
        for status in (400, 413):
            contents[status] = tuple(dict.fromkeys((*contents.get(status, ()), JSON)))
    return dict(sorted(contents.items()))


def _validated(param: ModelField, may_miss: bool) -> bool:
    """Whether a value of the parameter can be refused (422): required (a query or header
    parameter; a path's is always there), bounded or typed."""
    info = param.field_info
    required = may_miss and info.is_required()
    return required or bool(info.metadata) or info.annotation not in (str, str | None)


def build(app: FastAPI) -> dict[str, Any]:
    """The document: FastAPI's parameters and form bodies, our statuses, cookie security and
    the CSRF token (form field or header) on every POST that needs one."""
    routes = ui_routes(app)
    schema = get_openapi(
        title="r2c dashboard",
        version="1",
        description=(
            "The web dashboard's routes (docs/dashboard.md), mounted at /ui by the API. Pages "
            "answer HTML; errors are HTML pages; a person signs in with OIDC, SAML or an API "
            "key and is then known by the session cookie `r2c_session`. Every POST carries the "
            f"session's CSRF token, as the form field `{csrf.FIELD}` or the header "
            f"`{csrf.HEADER}`."
        ),
        routes=app.routes,
        servers=[{"url": "/ui"}],
    )
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        SESSION_SCHEME: {
            "type": "apiKey",
            "in": "cookie",
            "name": COOKIE,
            "description": "the dashboard's session (HttpOnly, SameSite=Lax, Path=/ui)",
        }
    }
    components.get("schemas", {}).pop("HTTPValidationError", None)
    components.get("schemas", {}).pop("ValidationError", None)
    for method, path, route in routes:
        operation = schema["paths"].get(path, {}).get(method.lower())
        if operation is None:  # include_in_schema=False
            continue
        doc = KINDS.get((method, path))
        operation["responses"] = {
            str(status): _response(status, contents)
            for status, contents in statuses(method, path, route).items()
        }
        if doc is not None and doc.access == "signed-in":
            operation["security"] = [{SESSION_SCHEME: []}]
        if doc is not None and doc.csrf:
            _document_csrf(schema, operation)
    if not components.get("schemas"):
        components.pop("schemas", None)
    return schema


def _response(status: int, contents: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": DESCRIPTIONS.get(status, str(status))}
    if not contents:
        out["headers"] = {"Location": {"schema": {"type": "string"}, "description": "where to"}}
    else:
        out["content"] = {c: {"schema": {"type": "string"} if c != JSON else {}} for c in contents}
    return out


def _document_csrf(schema: dict[str, Any], operation: dict[str, Any]) -> None:
    token = {
        "type": "string",
        "maxLength": csrf.MAX_LENGTH,
        "description": "the session's CSRF token (in every form of the dashboard's pages)",
    }
    parameters = operation.setdefault("parameters", [])
    parameters.append({
        "name": csrf.HEADER,
        "in": "header",
        "required": False,
        "schema": token,
        "description": f"the CSRF token, when the form field `{csrf.FIELD}` is not sent",
    })  # fmt: skip
    form = "application/x-www-form-urlencoded"
    body = operation.setdefault("requestBody", {"content": {form: {"schema": {}}}})
    media = body["content"].setdefault(form, {"schema": {}})
    target = media["schema"]
    ref = target.get("$ref")
    if ref:
        target = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    if not target:
        target.update({"type": "object", "properties": {}})
    target.setdefault("properties", {})[csrf.FIELD] = deepcopy(token)
