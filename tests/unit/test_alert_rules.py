"""The alert rules of deploy/prometheus: valid, referenced by prometheus.yml, and each one
raises (and only raises) the alerts its test in alerts_test.yml expects, by promtool itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool") or "/usr/bin/promtool"
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_fires_as_its_test_expects() -> None:
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_has_a_test() -> None:
    rules = (PROMETHEUS / "alerts.yml").read_text()
    tests = (PROMETHEUS / "alerts_test.yml").read_text()
    names = [line.split(":", 1)[1].strip() for line in rules.splitlines() if "- alert:" in line]
    assert len(names) == 13
    untested = [n for n in names if f"alertname: {n}" not in tests]
    assert untested == []


def test_the_config_loads_the_rules() -> None:
    # The R2C_HOME placeholder of the router targets only draws a warning: the check holds.
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout + done.stderr
