"""Failed authentications and denied authorizations in the audit trail, rate-limited.

Each refusal is one audit event, committed in its own transaction (there is no change to commit
it with). A client hammering the API with bad keys must not fill the trail or hold the chain's
lock, so at most `R2C_AUDIT_AUTH_FAILURES_PER_MINUTE` refusals are recorded per client address
and per key prefix each minute, and ten times that in all; the rest are counted, and the count
rides on the next event recorded for that address. The presented key is never recorded: only its
prefix (`r2c_<12 hex>`, public by design) when it has one.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from typing import Any

from fastapi import Request

from core.db import apikeys, audit
from core.errors import R2CError
from core.logging import request_id_var
from core.models.apikeys import Principal

log = logging.getLogger("r2c.api.audit")
WINDOW_SECONDS = 60.0
MAX_TRACKED = 10_000  # distinct addresses and prefixes remembered per window
_PREFIX = re.compile(r"[0-9a-f]{12}")


class RefusalLimiter:
    """Fixed one-minute windows of refusals per address, per key prefix, and overall."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._window = 0.0
        self._counts: dict[str, int] = defaultdict(int)
        self._suppressed: dict[str, int] = defaultdict(int)

    def admit(self, address: str, prefix: str | None, now: float | None = None) -> int | None:
        """None if this refusal is not to be recorded; else how many from `address` were
        left out before it."""
        now = time.monotonic() if now is None else now
        if now - self._window >= WINDOW_SECONDS:
            self._window = now
            self._counts.clear()
        keys = [f"addr:{address}", "all"] + ([f"key:{prefix}"] if prefix else [])
        limits = {"all": self.per_minute * 10}
        over = any(self._counts[k] >= limits.get(k, self.per_minute) for k in keys)
        if over or len(self._counts) > MAX_TRACKED:
            if len(self._suppressed) < MAX_TRACKED:
                self._suppressed[address] += 1
            return None
        for k in keys:
            self._counts[k] += 1
        return self._suppressed.pop(address, 0)


def _public_prefix(key: str | None) -> str | None:
    # Only a prefix of the shape this API issues: anything else could be part of a secret.
    prefix = apikeys.prefix_of(key) if key else None
    return prefix if prefix and _PREFIX.fullmatch(prefix) else None


def _limiter(request: Request) -> RefusalLimiter:
    state = request.app.state
    limiter: RefusalLimiter | None = getattr(state, "refusal_limiter", None)
    if limiter is None:
        limiter = RefusalLimiter(state.settings.audit_auth_failures_per_minute)
        state.refusal_limiter = limiter
    return limiter


async def record_refusal(
    request: Request,
    action: str,
    *,
    reason: str,
    key: str | None = None,
    principal: Principal | None = None,
    extra: dict[str, Any] | None = None,
    **detail: Any,
) -> None:
    """Audit a refused request (`auth.failed` or `auth.denied`), if the limiter lets it in.
    Never raises: the client gets its 401 or 403 whatever happens here."""
    request.state.refusal_audited = True  # the error handler then leaves this 403 alone
    address = request.client.host if request.client else "unknown"
    prefix = _public_prefix(key)
    limiter = _limiter(request)
    if limiter.per_minute == 0:
        return
    suppressed = limiter.admit(address, prefix)
    if suppressed is None:
        return
    actor = principal.initiator if principal else (f"key:{prefix}" if prefix else "anonymous")
    event = {
        "reason": reason,
        "address": address,
        "method": request.method,
        "key_prefix": prefix,
        **detail,
        **(extra or {}),
        **({"suppressed_before": suppressed} if suppressed else {}),
    }
    try:
        async with request.app.state.sessions() as session:
            await audit.record(
                session,
                actor=actor,
                action=action,
                target=request.url.path[:255],
                detail={k: v for k, v in event.items() if v is not None},
                request_id=request_id_var.get(),
            )
            await session.commit()
    except Exception:  # the refusal stands; the trail's failure is logged, not answered
        log.warning("could not audit a refused request (%s)", action, exc_info=True)


async def record_forbidden(request: Request, err: R2CError) -> None:
    """Audit a 403 raised after authentication: a service's role check (terminating needs
    admin, ...) or an environment policy's refusal, naming the policy and rule if any."""
    if getattr(request.state, "refusal_audited", False):
        return
    policy: dict[str, Any] = {k: err.details.get(k) for k in ("policy", "policy_version", "rule")}
    await record_refusal(
        request,
        "auth.denied",
        reason="policy" if policy["policy"] else err.details.get("reason") or "forbidden",
        principal=getattr(request.state, "principal", None),
        message=err.message[:300],
        extra={k: v for k, v in policy.items() if isinstance(v, str | int)},
    )
