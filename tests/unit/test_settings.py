"""Settings: defaults < config/<env>/app.json < environment, and errors that name the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.settings import SettingsError, load_settings


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("R2C_CONFIG_DIR", str(tmp_path))
    for name in ("PORT", "LOG_LEVEL", "R2C_ENV", "R2C_HOME", "POSTGRES_URL", "TEMPORAL_ADDRESS",
                 "R2C_UI_ACTIONS", "R2C_MAX_BODY_BYTES"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _write(config_dir: Path, env: str, values: dict[str, object]) -> None:
    (config_dir / env).mkdir(parents=True, exist_ok=True)
    (config_dir / env / "app.json").write_text(json.dumps(values))


def test_defaults_follow_the_specification(config_dir: Path) -> None:
    s = load_settings()
    assert (s.env, s.port, s.metrics_port, s.temporal_port, s.temporal_ui_port) == (
        "development",
        8080,
        9091,
        7233,
        8233,
    )
    assert s.database_url.startswith("sqlite+aiosqlite:///")
    assert s.database_url.endswith(".r2c/r2c.db")
    assert s.temporal_target == "127.0.0.1:7233"


def test_app_json_overrides_defaults_and_env_overrides_app_json(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(config_dir, "staging", {"port": 9000, "log_level": "DEBUG", "metrics_port": 9500})
    monkeypatch.setenv("R2C_ENV", "staging")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    s = load_settings()
    assert (s.env, s.port, s.log_level, s.metrics_port) == ("staging", 9000, "ERROR", 9500)


def test_postgres_url_selects_postgresql(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgresql://u:p@db:5432/r2c")
    assert load_settings().database_url == "postgresql+psycopg://u:p@db:5432/r2c"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "eighty", "PORT: Input should be a valid integer"),
        ("PORT", "70000", "PORT: Input should be less than or equal to 65535"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("TEMPORAL_ADDRESS", "localhost", "TEMPORAL_ADDRESS: Value error, expected host:port"),
        ("POSTGRES_URL", "mysql://x", "POSTGRES_URL: Value error, expected a URL of the form"),
        ("R2C_ENV", "prod", "R2C_ENV: Input should be 'development', 'staging' or 'production'"),
    ],
)
def test_invalid_values_name_the_setting_and_the_form(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_placeholder_secrets_refused_outside_development(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R2C_ENV", "production")
    monkeypatch.setenv("VAULT_TOKEN", "changeme")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "VAULT_TOKEN is a placeholder" in str(caught.value)
    assert "changeme" not in str(caught.value).replace("VAULT_TOKEN is a placeholder", "")


def test_broken_app_json_is_reported_with_its_path(config_dir: Path) -> None:
    (config_dir / "development").mkdir()
    (config_dir / "development" / "app.json").write_text("{not json")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "app.json is not valid JSON" in str(caught.value)


def test_shipped_config_files_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("R2C_CONFIG_DIR", raising=False)
    for env in ("development", "staging", "production"):
        monkeypatch.setenv("R2C_ENV", env)
        assert load_settings().env == env


@pytest.mark.parametrize("value", ["debug", "Debug", "DEBUG", " info ", "warning"])
def test_log_level_is_accepted_in_any_case(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LOG_LEVEL", value)
    assert load_settings().log_level == value.strip().upper()


@pytest.mark.parametrize(
    ("env", "given", "expected"),
    [
        ("development", None, "all"),
        ("staging", None, "safe"),
        ("production", None, "safe"),
        ("production", "none", "none"),
        ("development", "safe", "safe"),
    ],
)
def test_ui_actions_default_depends_on_the_environment(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, env: str, given: str | None, expected: str
) -> None:
    monkeypatch.setenv("R2C_ENV", env)
    if given is not None:
        monkeypatch.setenv("R2C_UI_ACTIONS", given)
    else:
        monkeypatch.delenv("R2C_UI_ACTIONS", raising=False)
    assert load_settings().ui_actions == expected


def test_request_limits_have_defaults_and_are_checked(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = load_settings()
    assert (s.max_body_bytes, s.auth_failures_per_key) == (1024 * 1024, 5)
    monkeypatch.setenv("R2C_MAX_BODY_BYTES", "10")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "R2C_MAX_BODY_BYTES: Input should be greater than or equal to 1024" in str(caught.value)


def test_a_bad_postgres_url_is_not_echoed(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_URL", "mysql://user:hunter2@db/x")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "POSTGRES_URL" in str(caught.value) and "hunter2" not in str(caught.value)
