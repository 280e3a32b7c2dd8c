"""The context file of `r2c login`: private on disk, several named contexts, and which API
and key a command uses (flags > environment > the context > the local `r2c up`)."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from cli.api_client import ConfigError
from cli.contexts import config_path, list_contexts, resolve, save_context, use_context


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("R2C_HOME", str(tmp_path / "home"))
    for name in ("R2C_URL", "R2C_API_URL", "R2C_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "admin.key").write_text("local-admin-key\n")
    return tmp_path


def test_the_file_is_private_and_holds_named_contexts(isolated: Path) -> None:
    path = save_context("staging", "https://staging.example/", "key-s")
    save_context("prod", "https://prod.example", 'key-"p"\\x', make_current=False)
    assert path == isolated / "xdg" / "r2c" / "config.toml" == config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = tomllib.loads(path.read_text())
    assert data["current"] == "staging"
    assert data["contexts"]["prod"] == {"url": "https://prod.example", "key": 'key-"p"\\x'}
    current, contexts = list_contexts()
    assert current == "staging"
    assert [(c.name, c.url) for c in contexts] == [
        ("staging", "https://staging.example"),
        ("prod", "https://prod.example"),
    ]
    use_context("prod")
    assert resolve().key == 'key-"p"\\x'
    with pytest.raises(ConfigError, match="no context 'nope'"):
        use_context("nope")
    with pytest.raises(ConfigError, match="letters, digits"):
        save_context("bad name", "http://x", "k")


def test_precedence_flags_environment_context_local(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing configured: the local `r2c up` and its admin key.
    local = resolve()
    assert (local.url, local.key, local.source) == (
        "http://127.0.0.1:8080",
        "local-admin-key",
        "local r2c up",
    )
    save_context("team", "https://team.example", "ctx-key")
    assert (resolve().url, resolve().key) == ("https://team.example", "ctx-key")
    # The environment beats the current context...
    monkeypatch.setenv("R2C_URL", "https://env.example")
    monkeypatch.setenv("R2C_API_KEY", "env-key")
    assert (resolve().url, resolve().key) == ("https://env.example", "env-key")
    # ...and flags beat the environment.
    flagged = resolve("https://flag.example", "flag-key")
    assert (flagged.url, flagged.key) == ("https://flag.example", "flag-key")
    # A context named on the command line beats the environment.
    named = resolve(context="team")
    assert (named.url, named.key) == ("https://team.example", "ctx-key")
    with pytest.raises(ConfigError, match="no context 'other'"):
        resolve(context="other")


def test_a_context_key_never_goes_to_another_url(monkeypatch: pytest.MonkeyPatch) -> None:
    save_context("team", "https://team.example", "ctx-key")
    monkeypatch.setenv("R2C_API_URL", "https://elsewhere.example")  # the older variable
    target = resolve()
    assert target.url == "https://elsewhere.example"
    assert target.key == "local-admin-key"  # not the context's key
    assert resolve("https://flag.example").key == "local-admin-key"
