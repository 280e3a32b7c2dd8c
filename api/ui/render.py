"""Rendering the dashboard's pages: Jinja2 templates, autoescaped, from api/ui/templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.ui.sessions import UiSession
from core.models.apikeys import Role

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(
    request: Request,
    template: str,
    *,
    session: UiSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The page, with who is signed in and the session's CSRF token for its forms."""
    principal = session.principal if session is not None else None
    html = _env.get_template(template).render(
        principal=principal,
        can_act=principal is not None and principal.role.allows(Role.OPERATOR),
        csrf_token=context.pop("csrf_token", session.csrf if session is not None else ""),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status_code)
