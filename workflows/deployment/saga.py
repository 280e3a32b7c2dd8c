"""Compensations of a deployment: registered before each step, run in reverse on the way out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from temporalio import workflow

Undo = Callable[[], Awaitable[None]]


@dataclass
class Saga:
    """A stack of named compensations. Each must be idempotent: it may run after its step
    only half happened, and a worker crash may run it again."""

    undo: list[tuple[str, Undo]] = field(default_factory=list)

    def add(self, name: str, fn: Undo) -> None:
        self.undo.append((name, fn))

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.undo)

    def clear(self) -> None:
        """Forget every compensation: the rollout committed, nothing is to be undone."""
        self.undo.clear()

    async def compensate(self) -> list[str]:
        """Run every compensation, newest first; one that fails does not stop the others.
        Returns the names of those that failed."""
        failed = []
        while self.undo:
            name, fn = self.undo.pop()
            try:
                await fn()
            except GeneratorExit:  # evicted from the worker's cache: not a failure of ours
                raise
            except BaseException:
                # BaseException: an undo cancelled or broken in any way must not stop the
                # undos after it (the whole unwind is shielded from the workflow's cancel).
                workflow.logger.exception("compensation %s failed", name)
                failed.append(name)
        return failed
