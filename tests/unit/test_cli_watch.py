"""`r2c watch`'s control flow without a server: Ctrl-C detaches (or aborts with
--abort-on-interrupt), and an API without the event stream is polled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cli import deploy, watch
from cli.api_client import ApiClient


class FakeApi(ApiClient):
    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.url, self.key, self.verify = "http://api", "k", True
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path))
        return self.answers.pop(0) if method == "GET" else {"state": "progressing"}


def _interrupted(*_: Any, **__: Any) -> Iterator[dict[str, Any]]:
    yield {"id": "d-1", "state": "progressing"}
    raise KeyboardInterrupt


def test_ctrl_c_detaches_and_says_how_to_reattach(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(deploy, "follow", _interrupted)
    api = FakeApi([])
    assert deploy.watch(api, "d-1", tty=False) == 130
    assert "re-attach: r2c watch deployment d-1" in capsys.readouterr().err
    assert api.calls == []  # nothing was sent to the deployment


def test_abort_on_interrupt_aborts_and_watches_to_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    streams = iter([_interrupted(), iter([{"id": "d-1", "state": "aborted"}])])
    monkeypatch.setattr(deploy, "follow", lambda *a, **k: next(streams))
    api = FakeApi([])
    assert deploy.watch(api, "d-1", tty=False, abort_on_interrupt=True) == 4
    assert api.calls == [("POST", "/api/v1/deployments/d-1/abort")]


def test_an_api_without_the_stream_is_polled(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_: Any) -> Iterator[dict[str, Any]]:
        raise watch.StreamMissing
        yield {}

    monkeypatch.setattr(watch, "_stream", missing)
    monkeypatch.setattr(watch, "POLL_SECONDS", 0.0)
    api = FakeApi([{"state": "progressing"}, {"state": "paused"}, {"state": "succeeded"}])
    polled: list[bool] = []
    states = [b["state"] for b in watch.follow(api, "d-1", on_poll=lambda: polled.append(True))]
    assert states == ["progressing", "paused", "succeeded"] and polled == [True]
    assert api.calls == [("GET", "/api/v1/deployments/d-1")] * 3
