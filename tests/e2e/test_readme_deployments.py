"""The README's deployment walk-through, run as written against the real `r2c up`: a newcomer
who follows it sees the bad canary roll back on its own."""

from __future__ import annotations

import re

from tests.e2e.readme_walkthrough import run_walkthrough
from tests.e2e.up_stack import UpStack


def test_the_readme_deployment_walkthrough_ends_rolled_back(up_stack: UpStack) -> None:
    up_stack.start()
    done = run_walkthrough(up_stack, "Deployments", timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rolled_back - error_rate 0.5" in done.stdout or re.search(
        r"rolled_back - error_rate 0\.\d+: failure condition `result > 0.05` holds", done.stdout
    ), done.stdout
    # The load report: v1 answered throughout.
    assert "v1" in done.stdout, done.stdout
