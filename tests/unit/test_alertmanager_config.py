"""deploy/alertmanager/alertmanager.yml: valid for amtool, a broken copy is not, and each
severity of deploy/prometheus/alerts.yml reaches the receiver the file says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("amtool") or "/usr/bin/amtool"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_config_is_valid() -> None:
    done = amtool("check-config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_a_route_to_a_missing_receiver_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(CONFIG.read_text().replace("receiver: pager", "receiver: nobody"))
    done = amtool("check-config", str(broken))
    assert done.returncode != 0
    assert 'undefined receiver "nobody"' in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=R2CWorkerDown"], "pager"),
        (["severity=warning", "alertname=R2CDeploymentFailed"], "team"),
        (["alertname=Unlabelled"], "team"),
    ],
)
def test_alerts_reach_the_receiver_of_their_severity(labels: list[str], receiver: str) -> None:
    done = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver


def test_every_severity_of_the_rules_has_a_route() -> None:
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    severities = set(re.findall(r"severity: (\w+)", rules))
    assert severities == {"critical", "warning"}
    routed = set(re.findall(r"severity=\"(\w+)\"", CONFIG.read_text()))
    assert severities <= routed
