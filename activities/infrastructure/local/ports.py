"""Ports for instances and routers, handed out under a lock so two allocations never collide.

Ports come from a range below Linux's ephemeral range (32768-60999), so outgoing connections
of other programs do not take them between allocation and bind.
"""

from __future__ import annotations

import fcntl
import json
import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from activities.infrastructure.local.paths import private_dir, private_file, write_private

DEFAULT_RANGE = (20000, 29999)


class PortAllocator:
    """A registry of the ports this system handed out, shared by every process on the host."""

    def __init__(self, root: Path, port_range: tuple[int, int] = DEFAULT_RANGE) -> None:
        self.root = root
        self.registry = root / "ports.json"
        self.lock_file = root / "ports.lock"
        self.low, self.high = port_range

    @contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        private_dir(self.root, self.root)
        private_file(self.lock_file)
        with open(self.lock_file, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            taken: dict[str, str] = (
                json.loads(self.registry.read_text()) if self.registry.exists() else {}
            )
            yield taken
            write_private(self.registry, json.dumps(taken, indent=1, sort_keys=True))

    def allocate(self, owner: str, wanted: int | None = None) -> int:
        """A port nobody else holds and nothing listens on: exactly `wanted` if given."""
        with self._locked() as taken:
            if wanted is not None:
                holder = taken.get(str(wanted))
                # Already ours (a router restarting on its port): its old connections may
                # linger in the kernel, so binding is left to the router (SO_REUSEPORT).
                if holder == owner:
                    return wanted
                if holder is not None or not _bindable(wanted):
                    raise OSError(f"port {wanted} is in use (by {holder or 'another program'})")
                taken[str(wanted)] = owner
                return wanted
            # Start after the last port handed out, so a port just freed is not reused at once;
            # a fresh home starts anywhere in the range, away from other homes' first ports.
            start: int = (
                max(int(p) for p in taken) + 1 if taken else random.randint(self.low, self.high)  # noqa: S311 - not a secret
            )
            candidates: list[int] = [*range(start, self.high + 1), *range(self.low, start)]
            for port in candidates:
                if str(port) not in taken and _bindable(port):
                    taken[str(port)] = owner
                    return port
        raise OSError(f"no free port in {self.low}-{self.high}")

    def release(self, port: int) -> None:
        with self._locked() as taken:
            taken.pop(str(port), None)

    def held(self) -> dict[int, str]:
        """Every port handed out, with its owner (a snapshot)."""
        with self._locked() as taken:
            return {int(port): owner for port, owner in taken.items()}


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
