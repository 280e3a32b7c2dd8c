"""CSRF protection: every POST to /ui carries the session's token, as the form field
`csrf_token` or the header `X-CSRF-Token`; without it (or without a session) it is a 403.
SameSite=Lax already keeps the cookie off other sites' POSTs; the token also covers a
sibling site on the same registrable domain, which SameSite does not."""

from __future__ import annotations

import hmac

from fastapi import Request

from api.ui.sessions import UiSession
from core.errors import PermissionDeniedError

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
MAX_LENGTH = 100


async def check(request: Request, session: UiSession | None) -> None:
    """403 unless the request carries `session`'s CSRF token."""
    sent = request.headers.get(HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form(max_files=0, max_fields=20)
        value = form.get(FIELD)
        sent = value if isinstance(value, str) else None
    if (
        session is None
        or not sent
        or len(sent) > MAX_LENGTH
        or not hmac.compare_digest(sent.encode(), session.csrf.encode())
    ):
        raise PermissionDeniedError(
            "this form is missing its CSRF token, or it belongs to another session",
            hint="reload the page and submit the form again",
            reason="csrf",
        )
