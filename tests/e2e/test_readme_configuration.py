"""The README's configuration walk-through, run as written against the real `r2c up` (with its
embedded OpenBao): a bad setting rolled out as a canary rolls back to the old configuration,
and a secret's rotation rolls out."""

from __future__ import annotations

import re

from tests.e2e.readme_walkthrough import run_walkthrough
from tests.e2e.up_stack import UpStack


def test_the_readme_configuration_walkthrough_rolls_back_a_bad_setting_and_rotates(
    up_stack: UpStack,
) -> None:
    up_stack.start()
    done = run_walkthrough(up_stack, "Configuration and secrets", timeout=240)
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
