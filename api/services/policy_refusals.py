"""Refusals that no HTTP answer carries, in the audit trail.

A 403 the API answers is audited by its error handler (`api.auth_audit.record_forbidden`). Some
starts are refused where no error reaches a client: a scheduled start refused by a freeze window
(a skip), an event route's start (an outcome in the receipt), the roll-out of a configuration
change to one target (an outcome in the answer). Those callers catch the error and record it here,
with the same action and fields as the API's own (`auth.denied`, reason `policy` or `forbidden`),
as one event committed on its own: the change was not made, so there is nothing to commit it with.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import audit
from core.errors import R2CError
from core.logging import request_id_var
from core.models.apikeys import Principal

log = logging.getLogger("r2c.api.audit")
DENIED = "auth.denied"


def is_refusal(err: R2CError) -> bool:
    return err.http_status == 403


async def record_refusal(
    session: AsyncSession,
    principal: Principal,
    err: R2CError,
    *,
    target: str,
    via: str,
    **detail: Any,
) -> None:
    """Record the refusal `err` of what `principal` asked (a 403; anything else is not a
    refusal and is left alone) and commit it. Never raises: the refusal stands either way."""
    if not is_refusal(err):
        return
    policy = {k: err.details.get(k) for k in ("policy", "policy_version", "rule")}
    event = {
        "reason": "policy" if policy["policy"] else "forbidden",
        "via": via,
        "message": err.message[:300],
        **{k: v for k, v in policy.items() if isinstance(v, str | int)},
        **detail,
    }
    try:
        await audit.record(
            session,
            actor=principal.initiator,
            action=DENIED,
            target=target[:255],
            detail={k: v for k, v in event.items() if v is not None},
            request_id=request_id_var.get(),
        )
        await session.commit()
    except Exception:
        await session.rollback()
        log.warning("could not audit a refusal of %s (%s)", principal.initiator, via, exc_info=True)
