"""Replay the committed deployment histories against today's workflow code: a change that would
break a deployment in flight fails here (recorded by `python -m tests.histories.record`).

Every history replays through the payload codec, as a worker reads it: those recorded before
payload encryption (in clear) prove old histories still load; `*-encrypted.json` were recorded
with it, under the test-only key ring `tests/histories/payload-keys.json`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from core.codec import ENCODING, EncryptionCodec
from core.payload_keys import KEY_FILE_NAME, PayloadKeyFile
from workers.registry import WORKFLOWS

FOLDER = Path(__file__).resolve().parents[1] / "histories"
HISTORIES = sorted(p for p in FOLDER.glob("*.json") if p.name != KEY_FILE_NAME)
ENCRYPTED = [p for p in HISTORIES if p.stem.endswith("-encrypted")]


def history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json("deploy-demo-dev", path.read_text())


def test_there_is_a_history_of_each_strategy_and_outcome() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"canary-promoted", "canary-rolled-back", "blue-green", "rolling-aborted"} <= names


def test_histories_in_clear_and_encrypted_are_both_kept() -> None:
    """The encrypted ones really are: their workflow input is ciphertext; the others not."""
    assert ENCRYPTED and len(ENCRYPTED) < len(HISTORIES)
    for path in HISTORIES:
        started = history(path).events[0].workflow_execution_started_event_attributes
        encodings = {p.metadata["encoding"] for p in started.input.payloads}
        assert (encodings == {ENCODING}) is (path in ENCRYPTED), path.name


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    codec = EncryptionCodec(PayloadKeyFile(FOLDER))
    converter = dataclasses.replace(pydantic_data_converter, payload_codec=codec)
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=converter)
    result = await replayer.replay_workflow(history(path), raise_on_replay_failure=True)
    assert result.replay_failure is None
