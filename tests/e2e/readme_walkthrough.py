"""Runs a README walk-through as written against a real `r2c up`: the first bash block of a
section, with only where the test's stack listens and keeps its key changed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.up_stack import UpStack

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough(section: str) -> str:
    """The first bash block of a README section, exactly as a reader copies it."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```bash\n(.*?)```", body, re.S)
    assert found, f"no bash block in the README's {section!r} section"
    return found.group(1)


def run_walkthrough(
    up_stack: UpStack, section: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Runs the section's bash block (`set -euo pipefail`) beside the stack's home, with our
    Python's bin folder (where `r2c` is) first on PATH."""
    script = walkthrough(section)
    # The only changes: where this test's stack listens and keeps its key (a reader's is
    # on 8080 with the key in ./.r2c).
    script = script.replace("http://127.0.0.1:8080", up_stack.base_url)
    script = script.replace(".r2c/admin.key", str(up_stack.admin_key_file))
    env = dict(up_stack.env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=up_stack.home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
