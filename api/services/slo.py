"""The SLO rules of a deployment request: `slo_burn_rate` needs the SLO it names."""

from __future__ import annotations

from collections.abc import Iterator

from core.db import slo as slo_store
from core.db.tables import ComponentRow
from core.errors import InvalidInputError
from core.models.analysis import AnalysisSpec
from core.models.deployments import (
    AnalysisStep,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentRequest,
)
from core.models.slo import SloSpec


def _analyses(req: DeploymentRequest) -> Iterator[tuple[str, AnalysisSpec]]:
    """Every analysis of the request, with its field path in the body."""
    strategy = req.strategy
    if isinstance(strategy, CanaryStrategy):
        for i, step in enumerate(strategy.steps):
            if isinstance(step, AnalysisStep):
                yield f"body.strategy.steps.{i}.analysis", step.analysis
        if strategy.analysis is not None:
            yield "body.strategy.analysis", strategy.analysis
    elif isinstance(strategy, BlueGreenStrategy):
        for name in ("pre_promotion_analysis", "post_promotion_analysis"):
            spec = getattr(strategy, name)
            if spec is not None:
                yield f"body.strategy.{name}", spec


def refuse_undeclared_slos(component: ComponentRow, req: DeploymentRequest) -> None:
    """A 422 naming each `slo_burn_rate` metric whose SLO the component does not declare."""
    declared = set((slo_store.spec_of(component.slo) or _NONE).declared())
    fields = []
    for path, spec in _analyses(req):
        for j, metric in enumerate(spec.metrics):
            slo = metric.slo_name
            if slo is not None and slo not in declared:
                fields.append(
                    {
                        "field": f"{path}.metrics.{j}",
                        "message": f"{component.name} declares no {slo} SLO",
                    }
                )
    if fields:
        raise InvalidInputError(
            f"slo_burn_rate needs the SLO it judges by, and {component.name} declares "
            f"{', '.join(sorted(declared)) or 'none'}",
            hint=f"declare it in the component's `slo` (PUT /api/v1/components/{component.name}"
            ', e.g. "slo": {"availability": {"objective": 0.999, "window": "30d"}}), or '
            "measure error_rate or a latency percentile instead",
            fields=fields,
        )


_NONE = SloSpec()
