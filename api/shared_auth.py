"""What API replicas share through Redis (`REDIS_URL`): verified keys, revocations and failed
authentication counts. Unset, nothing here is made and every replica keeps all of it in
process (api/key_verifier.py, api/ratelimit.py).

- **Verified keys**: `<prefix>auth:key:<sha256 of the key>` holds the principal and its standing
  (expiry, rotation grace) for `R2C_REDIS_CACHE_SECONDS`, so a replica that has not seen a key
  skips its argon2 check. Never the key itself: only its digest names the entry. Each entry
  carries an HMAC with a key derived from the audit chain's current HMAC key (which every
  replica already shares to sign audit events): whoever can write to Redis but cannot read
  that key cannot plant a principal. An entry is rebuilt as the principal class it was made
  from (its `model_dump`), so fields added to `Principal` travel with it.
- **Revocations**: revoking or rotating a key deletes its entries and publishes its id on
  `<prefix>auth:revoked`; each replica listens and drops the key from its own cache (well under
  a second). A store that races a revocation is refused by a shared generation counter (see
  `_STORE`), so a verification begun before a revocation cannot put the key back.
- **Failure limits**: failed verifications per key prefix and per client address, a sliding
  window per name (a sorted set of failure times, Redis's clock), atomic in a script.

Redis is never needed to answer: every call here gives up after `TIMEOUT` and reports nothing,
and the caller carries on in process (after one failure Redis is left alone for
`PAUSE_SECONDS`, so an outage costs one timeout a second, not one a request). A replica that
misses revocations while Redis is away still re-checks each cached key in the store every
`RECHECK_SECONDS` (api/key_verifier.py), as without Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from api.ratelimit import Scope
from core.audit_key_store import open_audit_keys
from core.db.apikeys import Standing
from core.key_ring import KeyRing
from core.models.apikeys import Principal
from core.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT = 0.5  # seconds a Redis call may take before the request goes on without it
PAUSE_SECONDS = 1.0  # after a failure, Redis is not asked again for this long
WARN_EVERY_SECONDS = 60.0  # "Redis unreachable" at most once a minute
RECONNECT_MAX_SECONDS = 2.0  # the subscription's backoff tops out here (revocations wait)
MAX_ENTRY_BYTES = 16 * 1024
MAX_KEY_ID = 200
MAX_ADDRESS = 100
_MAC_CONTEXT = b"r2c shared auth cache v1"
_RING_RELOAD_SECONDS = 30.0

# Store an entry only if no revocation happened since the caller read the generation
# (ARGV[1]) before looking the key up in the store; index it under its key id.
_STORE = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('SADD', KEYS[3], KEYS[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""
# A revocation: bump the generation, delete the key's entries, tell every replica.
_FORGET = """
redis.call('INCR', KEYS[1])
local names = redis.call('SMEMBERS', KEYS[2])
for _, name in ipairs(names) do redis.call('DEL', name) end
redis.call('DEL', KEYS[2])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""
# Seconds until every name in KEYS may try again (0: now). ARGV: window ms, then the limit of
# each name. Failures older than the window fall out first.
_RETRY_AFTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[i + 1])
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local w = math.max(1, math.ceil((tonumber(oldest[2]) + window - now) / 1000))
    if w > wait then wait = w end
  end
end
return wait
"""
# Count one failure of every name in KEYS; ARGV: window ms, a unique tag, then each limit
# (only the newest `limit` failures matter, so no more are kept).
_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('ZADD', key, now, t[1] .. '.' .. t[2] .. ':' .. ARGV[2])
  redis.call('ZREMRANGEBYRANK', key, 0, -(tonumber(ARGV[i + 2]) + 1))
  redis.call('PEXPIRE', key, window)
end
return 1
"""


def masked_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***: what logs and errors may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class SharedKey:
    """A verified key as another replica left it: who it is, how long it works, and when the
    store was last asked about it (wall clock)."""

    principal: Principal
    standing: Standing
    checked_at: float


def principal_from(data: Any) -> Principal | None:
    """The principal a `model_dump(mode="json")` came from: an OIDC one by its `kind`."""
    if not isinstance(data, dict):
        return None
    try:
        if data.get("kind") == "oidc":
            from core.oidc import OidcPrincipal

            return OidcPrincipal.model_validate(data)
        return Principal.model_validate(data)
    except ValidationError:
        return None


class SharedAuth:
    """The Redis side of authentication. Every method degrades: on any Redis failure it
    returns "nothing shared" (None, False) and logs a warning at most once a minute."""

    def __init__(self, settings: Settings, ring: Callable[[], KeyRing] | None = None) -> None:
        assert settings.redis_url is not None
        self.url = masked_url(settings.redis_url)
        self.ttl = settings.redis_cache_seconds
        self._prefix = settings.redis_prefix
        self.channel = f"{self._prefix}auth:revoked"
        self._gen = f"{self._prefix}auth:gen"
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # a failed call is not repeated: the request goes on
            client_name="r2c-api",
        )
        self._ring_source = ring or open_audit_keys(settings).ring
        self._macs: dict[str, bytes] = {}
        self._current_kid: str | None = None
        self._ring_loaded_at = -math.inf
        self._paused_until = 0.0
        self._warned_at = -math.inf
        self.subscribed = False
        self._listener: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ life and health

    def start(self, on_revoked: Callable[[str], None], on_reconnect: Callable[[], None]) -> None:
        """Listen for revocations from every replica until `stop`."""
        self._listener = asyncio.create_task(self._listen(on_revoked, on_reconnect))

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()

    async def ping(self) -> bool:
        """Redis answers and this replica hears revocations (for GET /ready)."""
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                return bool(await self._redis.ping()) and self.subscribed
        except (RedisError, OSError, TimeoutError):
            return False

    def _usable(self) -> bool:
        return time.monotonic() >= self._paused_until

    def _failed(self, what: str, err: BaseException) -> None:
        self._paused_until = time.monotonic() + PAUSE_SECONDS
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "Redis at %s unreachable (%s: %s); %s in process meanwhile",
                self.url,
                type(err).__name__,
                err,
                what,
            )

    async def _call(self, what: str, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script, or None when Redis is paused or fails."""
        if not self._usable():
            return None
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                return await self._redis.eval(script, len(keys), *keys, *args)
        except (RedisError, OSError, TimeoutError) as err:
            self._failed(what, err)
            return None

    # ------------------------------------------------------------------ revocations

    async def _listen(
        self, on_revoked: Callable[[str], None], on_reconnect: Callable[[], None]
    ) -> None:
        backoff = 0.1
        lost = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed = True
                backoff = 0.1
                if lost:
                    # Revocations sent meanwhile were missed: every cached key is re-checked.
                    log.info("Redis at %s reachable again; revocations heard again", self.url)
                    on_reconnect()
                    lost = False
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    key_id = _text(message.get("data"), MAX_KEY_ID)
                    if key_id:
                        on_revoked(key_id)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # Redis's errors and any other: this task must not end
                self.subscribed = False
                if not lost:
                    lost = True
                    log.warning(
                        "cannot hear revocations from Redis at %s (%s: %s); retrying, and"
                        " re-checking cached keys in the store every few seconds meanwhile",
                        self.url,
                        type(err).__name__,
                        err,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
            finally:
                self.subscribed = False
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except (RedisError, OSError):
                    pass

    def forget(self, key_id: str) -> None:
        """Delete the key's shared entries and tell every replica (in the background: the
        caller, a route, does not wait on Redis)."""
        task = asyncio.create_task(
            self._call(
                "revocations reach the other replicas within their re-check only;",
                _FORGET,
                [self._gen, self._index(key_id)],
                [self.channel, key_id],
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait for the revocations being sent (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ verified keys

    def _entry(self, digest: str) -> str:
        return f"{self._prefix}auth:key:{digest}"

    def _index(self, key_id: str) -> str:
        return f"{self._prefix}auth:ids:{key_id}"

    async def generation(self) -> str | None:
        """The revocation generation now: read it before looking a key up in the store, and
        hand it to `store_key`."""
        if not self._usable():
            return None
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                value = await self._redis.get(self._gen)
        except (RedisError, OSError, TimeoutError) as err:
            self._failed("API keys are verified", err)
            return None
        return "0" if value is None else _text(value, 40)

    async def _load(self, name: str) -> dict[str, Any] | None:
        """The body of the entry `name` if it is there and its MAC is right."""
        if not self._usable():
            return None
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                raw = await self._redis.get(name)
        except (RedisError, OSError, TimeoutError) as err:
            self._failed("keys and tokens are verified", err)
            return None
        if raw is None or len(raw) > MAX_ENTRY_BYTES:
            return None
        return await self._open(name, raw)

    async def load_key(self, digest: str) -> SharedKey | None:
        body = await self._load(self._entry(digest))
        if body is None:
            return None
        principal = principal_from(body.get("principal"))
        standing = _standing(body.get("ends_at"), body.get("reason"))
        checked_at = body.get("checked_at")
        if principal is None or standing is None or not isinstance(checked_at, int | float):
            return None
        return SharedKey(principal, standing, float(checked_at))

    async def store_key(
        self, digest: str, principal: Principal, standing: Standing, generation: str
    ) -> None:
        body = {
            "principal": principal.model_dump(mode="json"),
            "ends_at": standing.ends_at.isoformat() if standing.ends_at else None,
            "reason": standing.reason,
            "checked_at": time.time(),
        }
        sealed = await self._seal(self._entry(digest), body)
        if sealed is None:
            return
        await self._call(
            "API keys are verified",
            _STORE,
            [self._gen, self._entry(digest), self._index(principal.key_id)],
            [generation, sealed, self.ttl],
        )

    # ------------------------------------------------------------------ verified tokens

    def _token(self, digest: str) -> str:
        return f"{self._prefix}auth:token:{digest}"

    async def load_token(self, digest: str) -> tuple[Principal, float] | None:
        """The principal of a token another replica verified, and until when (epoch s)."""
        body = await self._load(self._token(digest))
        if body is None:
            return None
        principal = principal_from(body.get("principal"))
        until = body.get("until")
        if principal is None or not isinstance(until, int | float):
            return None
        return principal, float(until)

    async def store_token(self, digest: str, principal: Principal, until: float) -> None:
        """Share a verified token's principal until `until` (its expiry, at most the cache
        time: the caller decides)."""
        ttl = math.ceil(until - time.time())
        if ttl <= 0:
            return
        body = {"principal": principal.model_dump(mode="json"), "until": until}
        name = self._token(digest)
        sealed = await self._seal(name, body)
        if sealed is None or not self._usable():
            return
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                await self._redis.set(name, sealed, ex=ttl)
        except (RedisError, OSError, TimeoutError) as err:
            self._failed("tokens are verified", err)

    # ------------------------------------------------------------------ entry MACs

    async def _keys(self, need: str | None = None) -> bool:
        """Load (or reload, at most every 30 s, when `need` is an unknown key id) the MAC keys,
        derived from the audit key ring. False when it cannot be read."""
        if self._current_kid is not None and (need is None or need in self._macs):
            return True
        if time.monotonic() - self._ring_loaded_at < _RING_RELOAD_SECONDS:
            return False  # read lately: an unknown key id stays unknown for a while
        self._ring_loaded_at = time.monotonic()
        try:
            ring = await asyncio.to_thread(self._ring_source)
        except Exception as err:  # its own error types, Vault's, the file's: all "no keys"
            log.warning(
                "the audit key ring cannot be read (%s); verified keys are not shared",
                type(err).__name__,
            )
            return False
        self._macs = {
            k.id: hmac.new(k.secret, _MAC_CONTEXT, hashlib.sha256).digest() for k in ring.keys
        }
        self._current_kid = ring.current_id
        return need is None or need in self._macs

    async def _seal(self, name: str, body: dict[str, Any]) -> str | None:
        if not await self._keys():
            return None
        assert self._current_kid is not None
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True)
        mac = _mac(self._macs[self._current_kid], name, payload)
        return json.dumps({"kid": self._current_kid, "body": payload, "mac": mac})

    async def _open(self, name: str, raw: bytes | str) -> dict[str, Any] | None:
        """The entry's body if its MAC is right for this name, else None (and a warning:
        someone wrote to Redis who should not have)."""
        try:
            outer = json.loads(raw)
            kid, payload, mac = outer["kid"], outer["body"], outer["mac"]
            if not (isinstance(kid, str) and isinstance(payload, str) and isinstance(mac, str)):
                raise TypeError
        except (ValueError, KeyError, TypeError, RecursionError):
            log.warning("a shared cache entry in Redis is malformed; ignored")
            return None
        if not await self._keys(kid):
            if self._current_kid is not None:  # else the ring is unreadable: said already
                log.warning("a shared cache entry in Redis names an unknown key; ignored")
            return None
        if not hmac.compare_digest(_mac(self._macs[kid], name, payload), mac):
            log.warning("a shared key cache entry in Redis has a wrong MAC; ignored")
            return None
        try:
            body = json.loads(payload)
        except (ValueError, RecursionError):
            return None
        return body if isinstance(body, dict) else None

    # ------------------------------------------------------------------ failure limits

    def _failures(self, scope: Scope, name: str) -> str:
        return f"{self._prefix}auth:fail:{scope}:{name[:MAX_ADDRESS]}"

    async def retry_after(self, names: list[tuple[Scope, str, int]], window: float) -> int | None:
        """Seconds until every (scope, name, limit) may try again: 0 now, None if unknown."""
        wait = await self._call(
            "failed authentications are limited",
            _RETRY_AFTER,
            [self._failures(scope, name) for scope, name, _ in names],
            [int(window * 1000), *(limit for _, _, limit in names)],
        )
        return wait if isinstance(wait, int) else None

    async def failed(self, names: list[tuple[Scope, str, int]], window: float) -> None:
        await self._call(
            "failed authentications are limited",
            _FAILED,
            [self._failures(scope, name) for scope, name, _ in names],
            [int(window * 1000), secrets.token_hex(6), *(limit for _, _, limit in names)],
        )


def _mac(key: bytes, name: str, payload: str) -> str:
    # The entry's name is covered: one copied under another key's digest does not verify.
    return hmac.new(key, f"{name}\n{payload}".encode(), hashlib.sha256).hexdigest()


def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _standing(ends_at: Any, reason: Any) -> Standing | None:
    if ends_at is None:
        return Standing(None, None) if reason is None else None
    if not isinstance(ends_at, str) or reason not in ("expired", "rotated"):
        return None
    try:
        at = datetime.fromisoformat(ends_at)
    except ValueError:
        return None
    return Standing(at, reason) if at.tzinfo is not None else None
