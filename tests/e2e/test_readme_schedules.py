"""The README's schedules walk-through, run as written against the real `r2c up`: a schedule
made with the CLI runs (triggered), pauses with a note, shows its runs with the schedule as
their initiator, and is deleted."""

from __future__ import annotations

import re

from tests.e2e.readme_walkthrough import run_walkthrough
from tests.e2e.up_stack import UpStack


def test_the_readme_schedules_walkthrough_runs_pauses_and_deletes(up_stack: UpStack) -> None:
    up_stack.start()
    done = run_walkthrough(up_stack, "Schedules", timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    print(out)
    assert re.search(r"^created schedule health-every-10s; next run \S+Z$", out, re.M), out
    assert "triggered schedule health-every-10s" in out, out
    assert "schedule health-every-10s is paused (quiet for the maintenance window)" in out, out
    # The list: the walk-through's schedule, paused, and r2c up's own health check.
    row = re.search(r"^health-every-10s\s+component-health-check\s+every 10s\s+paused\s", out, re.M)
    assert row, out
    assert re.search(r"^system-health-check\s+component-health-check\s", out, re.M), out
    # describe: the note, the spec, a completed run whose id is the schedule's.
    assert "state:      paused - note: quiet for the maintenance window" in out, out
    assert "when:       every 10s" in out, out
    assert re.search(r"^\s+\S+Z\s+completed\s+r2c:schedule:health-every-10s-\S+$", out, re.M), out
    # The orchestration list by Initiator: every run names the schedule.
    runs = re.findall(r"^(r2c:schedule:health-every-10s-\S+) (\w+) (\S+)$", out, re.M)
    assert runs and all(who == "schedule:health-every-10s" for _, _, who in runs), out
    assert out.rstrip().endswith("deleted schedule health-every-10s"), out
