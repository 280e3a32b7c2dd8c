"""The README's SLO example is a component spec the API accepts, as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.models.components import ComponentSpec

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(title: str) -> str:
    return README.read_text().split(f"\n### {title}\n", 1)[1].split("\n#", 1)[0]


def test_the_readme_slo_example_is_a_valid_component() -> None:
    block = re.search(r"```json\n(.*?)```", _section("SLOs and error budgets"), re.S)
    assert block, "no JSON example in the README's SLO section"
    spec = ComponentSpec.model_validate(json.loads(block.group(1)))
    assert spec.slo is not None
    assert spec.slo.availability is not None and spec.slo.availability.objective == 0.999
    assert spec.slo.latency is not None and spec.slo.latency.objective == 0.99
