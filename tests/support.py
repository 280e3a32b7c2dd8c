"""Helpers for tests: polling on a condition with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool] = bool,
    *,
    within: float = 20.0,
    every: float = 0.05,
    what: str = "condition",
) -> T:
    """Call `probe` until `done(result)` holds; fail with the last result after `within` s."""
    deadline = time.monotonic() + within
    last: T | None = None
    while True:
        last = await probe()
        if done(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(every)


def wait_for_sync(
    probe: Callable[[], T],
    done: Callable[[T], bool] = bool,
    *,
    within: float = 20.0,
    every: float = 0.05,
    what: str = "condition",
) -> T:
    """The blocking twin of `wait_for`."""
    deadline = time.monotonic() + within
    while True:
        last = probe()
        if done(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")
        time.sleep(every)


def r2c_keys(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `r2c keys ARGS` in a process of its own, as a person would, with `env`."""
    return subprocess.run(
        [sys.executable, "-m", "cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stop_processes(procs: list[subprocess.Popen[bytes]], grace: float = 10) -> None:
    """SIGTERM every process, then wait for each; one still running after `grace` s is
    SIGKILLed."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
