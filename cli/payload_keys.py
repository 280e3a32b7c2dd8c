"""`r2c keys ...`: the payload encryption keys of this home (`R2C_HOME/payload-keys.json`).

Works with the system up or down: the API and workers notice a rotation within seconds and
encrypt with the new key from then on; every older key stays, so old histories still decrypt.
Only ids and creation times are ever shown, never key material.
"""

from __future__ import annotations

import asyncio

from cli.keys import _actor, _store
from core import payload_keys
from core.db import audit
from core.errors import R2CError
from core.settings import Settings


def _fail(err: R2CError) -> int:
    print(f"error: {err.message}" + (f" ({err.hint})" if err.hint else ""))
    return 1


def list_keys(settings: Settings) -> int:
    try:
        ring = payload_keys.read_ring(settings.home)
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
        ring = await asyncio.to_thread(payload_keys.rotate, settings.home)
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
    print("# running API and workers switch to it within seconds; back up payload-keys.json")
    return 0
