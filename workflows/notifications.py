"""Workflows that deliver notifications (issue 10: notifications). Filled in by that work."""

from __future__ import annotations

from collections.abc import Sequence

NOTIFICATION_WORKFLOWS: Sequence[type] = ()
