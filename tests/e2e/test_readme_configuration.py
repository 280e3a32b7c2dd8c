"""The README's configuration walk-through, run as written against the real `r2c up` (with its
embedded OpenBao): a bad setting rolled out as a canary rolls back to the old configuration,
and a secret's rotation rolls out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_readme_deployments import walkthrough
from tests.e2e.up_stack import UpStack


def test_the_readme_configuration_walkthrough_rolls_back_a_bad_setting_and_rotates(
    up_stack: UpStack,
) -> None:
    up_stack.start()
    script = walkthrough("Configuration and secrets")
    # The only changes: where this test's stack listens and keeps its key.
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
        timeout=240,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    print(out)
    ended = re.findall(r"^(\w+) - config revision (\d+) - (.*)$", out, re.M)
    assert [(state, int(rev)) for state, rev, _ in ended] == [
        ("succeeded", 2),
        ("rolled_back", 3),
        ("succeeded", 5),
    ], out
    assert "error_rate" in ended[1][2], out
    # The revisions: v1 with the rotation's configuration, then v1 with the first one.
    assert re.search(r"revision 2 v1 config 5\nrevision 1 v1 config 2\n", out), out
    assert '"value":"<secret v2>"' in out, out
    # The secret's values appear nowhere in what the walk-through printed.
    assert "change-me-" not in out, out
