"""The Vault secret store against a real OpenBao dev server: versions, token and AppRole
authentication (renewal and re-login past the token's TTL), and the errors of a Vault that
is down, sealed or refuses us, none of which may carry a token or a value."""

from __future__ import annotations

import time
from typing import Any

import hvac
import pytest

from core.errors import (
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    R2CError,
    UpstreamError,
)
from core.settings import Settings
from core.vault import VaultSecretStore, open_secret_store
from tests.integration.openbao_fixture import OpenBaoServer
from tests.support import wait_for

TOKEN_TTL = 2
TOKEN_MAX_TTL = 4


def root(server: OpenBaoServer) -> hvac.Client:
    return hvac.Client(url=server.url, token=server.token, timeout=5)


def text_of(err: R2CError) -> str:
    return f"{err} {err.message} {err.hint} {err.details}"


def approle_credentials(server: OpenBaoServer, policy: str) -> tuple[str, str]:
    """Enable AppRole with a role whose tokens live TOKEN_TTL s, renewable to TOKEN_MAX_TTL s."""
    admin = root(server)
    admin.sys.enable_auth_method("approle")
    admin.sys.create_or_update_policy("r2c-secrets", policy)
    admin.auth.approle.create_or_update_approle(
        "r2c",
        token_policies=["r2c-secrets"],
        token_ttl=f"{TOKEN_TTL}s",
        token_max_ttl=f"{TOKEN_MAX_TTL}s",
    )
    role_id = admin.auth.approle.read_role_id("r2c")["data"]["role_id"]
    secret_id = admin.auth.approle.generate_secret_id("r2c")["data"]["secret_id"]
    return role_id, secret_id


SECRETS_POLICY = 'path "secret/data/*" { capabilities = ["create", "read", "update"] }'


async def test_each_write_is_a_new_version_and_every_version_reads_back(
    openbao: OpenBaoServer,
) -> None:
    store = VaultSecretStore(openbao.url, token=openbao.token)
    assert await store.write("config/db/password", "first") == 1
    assert await store.write("config/db/password", {"user": "app", "pw": "second"}) == 2
    assert await store.write("config/db/password", [1, 2.5, None, True]) == 3

    assert await store.read("config/db/password") == [1, 2.5, None, True]
    assert await store.read("config/db/password", version=1) == "first"
    assert await store.read("config/db/password", version=2) == {"user": "app", "pw": "second"}
    await store.check()


async def test_a_missing_path_or_version_is_not_found(openbao: OpenBaoServer) -> None:
    store = VaultSecretStore(openbao.url, token=openbao.token)
    with pytest.raises(NotFoundError, match="no secret `nothing/here`"):
        await store.read("nothing/here")
    await store.write("api/key", "v1")
    with pytest.raises(NotFoundError, match="version 7"):
        await store.read("api/key", version=7)


async def test_a_map_written_by_another_tool_reads_back_whole(openbao: OpenBaoServer) -> None:
    root(openbao).secrets.kv.v2.create_or_update_secret("legacy", {"user": "u", "pw": "p"})
    store = VaultSecretStore(openbao.url, token=openbao.token)
    assert await store.read("legacy") == {"user": "u", "pw": "p"}


@pytest.mark.parametrize(
    "path", ["", "/abs", "a/../b", "a//b", ".hidden", "a b", "x" * 129, "/".join(["a"] * 17)]
)
async def test_a_bad_path_is_refused_before_vault_is_asked(
    openbao: OpenBaoServer, path: str
) -> None:
    store = VaultSecretStore(openbao.url, token=openbao.token)
    with pytest.raises(InvalidInputError) as caught:
        await store.write(path, "value")
    assert caught.value.hint and "segments" in caught.value.hint


async def test_values_must_be_json_and_bounded_and_errors_never_echo_them(
    openbao: OpenBaoServer,
) -> None:
    store = VaultSecretStore(openbao.url, token=openbao.token)
    with pytest.raises(InvalidInputError) as not_json:
        await store.write("k", {"pw": float("nan")})
    with pytest.raises(PayloadTooLargeError) as too_big:
        await store.write("k", "hunter2-" * 40_000)
    assert "hunter2" not in text_of(too_big.value)
    assert "nan" not in not_json.value.message.lower().replace("no nan", "")
    with pytest.raises(InvalidInputError):
        await store.read("k", version=0)


async def test_a_wrong_token_is_refused_without_naming_it(openbao: OpenBaoServer) -> None:
    wrong = "s.this-token-is-wrong-1234"
    store = VaultSecretStore(openbao.url, token=wrong)
    for call in (store.write("a", "v"), store.read("a"), store.check()):
        with pytest.raises(UpstreamError) as caught:
            await call
        assert "permission denied" in caught.value.message
        assert wrong not in text_of(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_token_without_the_policy_gets_a_permission_error_naming_the_mount(
    openbao: OpenBaoServer,
) -> None:
    admin = root(openbao)
    admin.sys.create_or_update_policy(
        "other", 'path "secret/data/other/*" { capabilities = ["read"] }'
    )
    token = admin.auth.token.create(policies=["other"], ttl="1h")["auth"]["client_token"]
    store = VaultSecretStore(openbao.url, token=token)
    with pytest.raises(UpstreamError) as caught:
        await store.write("mine", "v")
    assert caught.value.hint and "secret/data/*" in caught.value.hint
    assert token not in text_of(caught.value)


async def test_approle_login_renews_then_logs_in_again_past_the_token_ttl(
    openbao: OpenBaoServer,
) -> None:
    role_id, secret_id = approle_credentials(openbao, SECRETS_POLICY)
    store = open_secret_store(
        Settings(vault_url=openbao.url, vault_role_id=role_id, vault_secret_id=secret_id)
    )
    assert isinstance(store, VaultSecretStore)
    assert await store.write("rotating/key", "kept") == 1
    first_token = store._client.token
    started = time.monotonic()

    async def read_and_time() -> float:
        assert await store.read("rotating/key") == "kept"
        return time.monotonic() - started

    # Reads keep succeeding for two max TTLs: the token is renewed, then replaced.
    await wait_for(
        read_and_time,
        lambda elapsed: elapsed > 2 * TOKEN_MAX_TTL,
        within=2 * TOKEN_MAX_TTL + 10,
        every=0.25,
        what="reads past the AppRole token's max TTL",
    )
    assert store.login.renewals >= 1
    assert store.login.logins >= 2
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=openbao.url, token=first_token, timeout=5).auth.token.lookup_self()


async def test_a_revoked_approle_token_is_replaced_by_a_new_login(openbao: OpenBaoServer) -> None:
    role_id, secret_id = approle_credentials(openbao, SECRETS_POLICY)
    store = VaultSecretStore(openbao.url, role_id=role_id, secret_id=secret_id)
    await store.write("k", "v")
    root(openbao).auth.token.revoke(store._client.token)
    assert await store.read("k") == "v"
    assert store.login.logins == 2


async def test_a_wrong_secret_id_fails_the_login_clearly(openbao: OpenBaoServer) -> None:
    role_id, _ = approle_credentials(openbao, SECRETS_POLICY)
    wrong = "00000000-1111-2222-3333-444444444444"
    store = VaultSecretStore(openbao.url, role_id=role_id, secret_id=wrong)
    with pytest.raises(UpstreamError) as caught:
        await store.check()
    assert "AppRole login" in caught.value.message
    assert wrong not in text_of(caught.value) and role_id not in text_of(caught.value)


async def test_a_stopped_vault_is_unavailable_within_seconds(openbao: OpenBaoServer) -> None:
    store = VaultSecretStore(openbao.url, token=openbao.token)
    await store.write("k", "before")
    await openbao.stop()
    for call in (store.read("k"), store.write("k", "after"), store.check()):
        started = time.monotonic()
        with pytest.raises(DependencyUnavailableError) as caught:
            await call
        assert time.monotonic() - started < 6
        assert "Vault" in caught.value.message and caught.value.hint
        assert openbao.token not in text_of(caught.value)
        assert "before" not in text_of(caught.value)


async def test_a_sealed_vault_is_unavailable_and_says_so(openbao: OpenBaoServer) -> None:
    store = VaultSecretStore(openbao.url, token=openbao.token)
    root(openbao).sys.seal()
    with pytest.raises(DependencyUnavailableError, match="sealed"):
        await store.read("k")


async def test_an_unanswering_vault_times_out_in_seconds() -> None:
    """A port that accepts connections and never answers: the read timeout bounds the wait."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        port = listener.getsockname()[1]
        store = VaultSecretStore(f"http://127.0.0.1:{port}", token="t", timeout=1)
        started = time.monotonic()
        with pytest.raises(DependencyUnavailableError, match="did not answer in time"):
            await store.check()
        assert time.monotonic() - started < 4
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({}, "Vault is not configured"),
        ({"vault_url": "http://127.0.0.1:1"}, "Vault has no credentials"),
        ({"vault_url": "http://127.0.0.1:1", "vault_role_id": "r"}, "Vault has no credentials"),
    ],
)
async def test_without_a_usable_vault_every_call_is_unavailable(
    values: dict[str, Any], says: str
) -> None:
    store = open_secret_store(Settings(**values))
    for call in (store.write("k", "v"), store.read("k"), store.check()):
        with pytest.raises(DependencyUnavailableError, match=says) as caught:
            await call
        assert caught.value.http_status == 503 and caught.value.hint
