"""`/codec`: the Temporal Web UI's codec server protocol (`/codec/decode`, `/codec/encode`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/codec", tags=["codec"])
