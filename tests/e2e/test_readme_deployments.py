"""The README's deployment walk-through, run as written against the real `r2c up`: a newcomer
who follows it sees the bad canary roll back on its own."""

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


def test_the_readme_deployment_walkthrough_ends_rolled_back(up_stack: UpStack) -> None:
    up_stack.start()
    script = walkthrough("Deployments")
    # The only changes: where this test's stack listens and keeps its key (a reader's is
    # on 8080 with the key in ./.r2c).
    script = script.replace("http://127.0.0.1:8080", up_stack.base_url)
    script = script.replace(".r2c/admin.key", str(up_stack.admin_key_file))
    env = dict(up_stack.env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=up_stack.home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rolled_back - error_rate 0.5" in done.stdout or re.search(
        r"rolled_back - error_rate 0\.\d+: failure condition `result > 0.05` holds", done.stdout
    ), done.stdout
    # The load report: v1 answered throughout.
    assert "v1" in done.stdout, done.stdout
