"""`r2c keys ...`: the payload encryption keys of this system, wherever R2C_PAYLOAD_KEYS keeps
them (`R2C_HOME/payload-keys.json`, or `r2c/payload-keys` in Vault).

Works with the system up or down: the API and workers notice a rotation within seconds and
encrypt with the new key from then on; every older key stays, so old histories still decrypt.
Only ids and creation times are ever shown, never key material.
"""

from __future__ import annotations

import asyncio

from cli.keys import _actor, _store
from core import payload_key_store
from core.db import audit
from core.errors import R2CError
from core.settings import Settings


def _fail(err: R2CError) -> int:
    print(f"error: {err.message}" + (f" ({err.hint})" if err.hint else ""))
    return 1


def list_keys(settings: Settings) -> int:
    try:
        ring = payload_key_store.read_ring(settings)
    except R2CError as err:
        return _fail(err)
    print(f"{'ID':36}  {'CREATED':20}  CURRENT")
    for key in ring.keys:  # oldest first, as rotations appended them
        current = "*" if key.id == ring.current_id else ""
        print(f"{key.id:36}  {key.created_at.strftime('%Y-%m-%d %H:%M:%S'):20}  {current}")
    return 0


async def rotate(settings: Settings) -> int:
    """A new current key, recorded in the audit trail (the key's id, never the key)."""
    try:
        ring = await asyncio.to_thread(payload_key_store.rotate, settings)
        async with _store(settings) as session:
            await audit.record(
                session,
                actor=_actor(),
                action="payload_key.rotated",
                target=ring.current_id,
                detail={"keys": len(ring.keys)},
            )
            await session.commit()
    except R2CError as err:
        return _fail(err)
    print(f"new current payload key {ring.current_id}; {len(ring.keys) - 1} older key(s) kept")
    backup = "the Vault secret" if settings.payload_keys == "vault" else "payload-keys.json"
    print(f"# running API and workers switch to it within seconds; back up {backup}")
    return 0
