"""Replay the committed deployment histories against today's workflow code: a change that would
break a deployment in flight fails here (recorded by `python -m tests.histories.record`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workers.registry import WORKFLOWS

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


def test_there_is_a_history_of_each_strategy_and_outcome() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"canary-promoted", "canary-rolled-back", "blue-green", "rolling-aborted"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json("deploy-demo-dev", path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
