"""End to end: `r2c up` without VAULT_URL runs a real OpenBao with its data on disk under
R2C_HOME, hands it to the worker and the API, and keeps its secrets across restarts."""

from __future__ import annotations

import asyncio
import base64
import signal
import socket
import stat

import httpx

from core.vault import VaultSecretStore
from tests.e2e.up_stack import UpStack, child_pids, pid_alive
from tests.support import wait_for_sync


def vault_url(stack: UpStack) -> str:
    return f"http://127.0.0.1:{stack.env['R2C_VAULT_PORT']}"


def private_text(stack: UpStack, name: str) -> str:
    path = stack.home / "openbao" / name
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, f"{path} has mode {mode:o}; only its owner may read it"
    text = path.read_text().strip()
    assert text
    return text


def test_up_runs_openbao_on_disk_and_its_secrets_survive_a_restart(up_stack: UpStack) -> None:
    first = up_stack.start()
    url = vault_url(up_stack)
    assert f"Vault          {url} (embedded OpenBao" in first.output()
    token = private_text(up_stack, "root-token")
    unseal_key = private_text(up_stack, "unseal-key")
    assert token not in first.output() and unseal_key not in first.output()
    assert stat.S_IMODE((up_stack.home / "openbao").stat().st_mode) == 0o700
    assert (up_stack.home / "openbao" / "data" / "raft" / "raft.db").is_file()
    (server,) = child_pids(up_stack.home, "bao server")
    ready = httpx.get(f"{up_stack.base_url}/ready", timeout=10).json()
    assert ready["dependencies"]["vault"] == "ok"

    store = VaultSecretStore(url, token=token)
    assert asyncio.run(store.write("e2e/db-password", {"pw": "kept-across-restarts"})) == 1

    assert first.stop(signal.SIGTERM) == 0
    wait_for_sync(lambda: not pid_alive(server), what="OpenBao stopped with `up`", within=20)
    assert up_stack.leftovers() == {}

    second = up_stack.start()
    assert private_text(up_stack, "unseal-key") == unseal_key
    assert private_text(up_stack, "root-token") == token
    assert asyncio.run(store.read("e2e/db-password")) == {"pw": "kept-across-restarts"}
    assert asyncio.run(store.write("e2e/db-password", "second")) == 2
    assert second.stop(signal.SIGTERM) == 0
    assert up_stack.leftovers() == {}


def test_up_refuses_to_start_when_the_vault_port_is_taken(up_stack: UpStack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(up_stack.env["R2C_VAULT_PORT"])))
        taken.listen(1)
        run = up_stack.launch()
        assert run.proc.wait(60) == 1
    assert "R2C_VAULT_PORT=" in run.output(), run.output()
    assert up_stack.leftovers() == {}


def test_up_with_a_wrong_unseal_key_stops_and_names_the_file(up_stack: UpStack) -> None:
    up_stack.start().stop(signal.SIGTERM)
    key_file = up_stack.home / "openbao" / "unseal-key"
    key_file.write_text(base64.b64encode(bytes(32)).decode() + "\n")

    run = up_stack.launch()
    assert run.proc.wait(60) == 1
    assert "did not accept its unseal key" in run.output(), run.output()
    assert str(key_file) in run.output()
    assert "Traceback" not in run.output()
    assert up_stack.leftovers() == {}
