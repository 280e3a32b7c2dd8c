"""Keeping an hvac client's token valid: a fixed token (`VAULT_TOKEN`) as given, or an AppRole
login (`VAULT_ROLE_ID`/`VAULT_SECRET_ID`) renewed before its TTL runs out and repeated once
renewal can no longer extend it (the role's max TTL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# Renew when a third of the lease is left: late enough not to renew on every call, early
# enough that a slow or briefly unreachable Vault does not let the token lapse.
RENEW_AT_FRACTION = 2 / 3
# A token this close to its end (at most a tenth of its lease) is treated as gone: a call
# started now could outlive it.
EXPIRY_SAFETY_SECONDS = 1.0


class TokenLogin:
    """The credentials of one hvac client. `ensure()` runs before every call (in the calling
    thread); `forget()` after Vault refused the token, so the next `ensure()` logs in again."""

    def __init__(
        self,
        client: Any,
        *,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._approle = (role_id, secret_id) if role_id and secret_id else None
        self._clock = clock
        self._lock = threading.Lock()
        self._logged_in = False
        self._expires_at = 0.0
        self._renew_at = 0.0
        self._renewable = False
        self._first_lease = 0
        self._safety = EXPIRY_SAFETY_SECONDS
        self.logins = 0
        self.renewals = 0
        if self._approle is None:
            client.token = token

    @property
    def uses_approle(self) -> bool:
        return self._approle is not None

    def ensure(self) -> None:
        """Log in or renew when the AppRole token is missing, near its end, or due."""
        if self._approle is None:
            return
        with self._lock:
            now = self._clock()
            if not self._logged_in or now >= self._expires_at - self._safety:
                self._login()
            elif now >= self._renew_at:
                if self._renewable:
                    self._renew()
                else:
                    self._login()

    def forget(self) -> None:
        """Vault refused the token (revoked, expired early): log in afresh next time."""
        with self._lock:
            self._logged_in = False

    def _login(self) -> None:
        assert self._approle is not None
        role_id, secret_id = self._approle
        answer = self._client.auth.approle.login(role_id=role_id, secret_id=secret_id)
        self.logins += 1
        lease = int(answer["auth"]["lease_duration"])
        self._first_lease = lease
        self._logged_in = True
        self._schedule(lease, renewable=bool(answer["auth"].get("renewable")))

    def _renew(self) -> None:
        try:
            answer = self._client.auth.token.renew_self()
        except Exception:
            # Renewal refused (the token hit its max TTL or was revoked): a new login is the
            # only way on, and it raises the real error if that fails too.
            self._login()
            return
        self.renewals += 1
        lease = int(answer["auth"]["lease_duration"])
        # A lease shorter than the first one means the max TTL capped it: renewing again
        # would only shrink it further, so the next refresh is a login.
        self._schedule(lease, renewable=lease >= self._first_lease)

    def _schedule(self, lease: int, *, renewable: bool) -> None:
        now = self._clock()
        if lease <= 0:  # a token without a TTL never needs renewing
            self._expires_at = self._renew_at = float("inf")
            self._renewable = False
            return
        self._expires_at = now + lease
        self._safety = min(EXPIRY_SAFETY_SECONDS, lease / 10)
        self._renew_at = now + lease * RENEW_AT_FRACTION
        self._renewable = renewable
