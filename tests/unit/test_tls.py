"""Certificate files are checked at start with a message naming the setting; plain HTTP on a
public address is refused outside development; `up --tls` makes its CA once, private."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from temporalio.service import TLSConfig

from cli.api_client import ConfigError, verify
from cli.prometheus import render_config
from cli.tls import ensure_local_tls
from cli.up import Supervisor
from core.settings import Settings, SettingsError, load_settings
from core.tls import load_pair, require_secure_transport, temporal_tls
from tests.tls_support import CertAuthority


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    return CertAuthority(tmp_path / "pki")


def _refusal(cert: Path, key: Path) -> str:
    with pytest.raises(SettingsError) as err:
        load_pair("R2C_TLS_CERT", cert, "R2C_TLS_KEY", key)
    return str(err.value)


def test_a_good_pair_loads(ca: CertAuthority) -> None:
    server = ca.issue("server")
    pair = load_pair("R2C_TLS_CERT", server.cert, "R2C_TLS_KEY", server.key)
    assert pair.not_after > datetime.now(UTC)


def test_each_bad_file_is_named_and_no_key_is_quoted(ca: CertAuthority, tmp_path: Path) -> None:
    server, other = ca.issue("server"), ca.issue("other")
    key_text = server.key.read_text()
    missing = _refusal(tmp_path / "absent.pem", server.key)
    assert "R2C_TLS_CERT=" in missing and "cannot be read" in missing
    assert "no PEM certificate" in _refusal(server.key, server.key)
    mismatch = _refusal(server.cert, other.key)
    assert "R2C_TLS_KEY=" in mismatch and "is not the private key" in mismatch
    garbage = tmp_path / "garbage-key.pem"
    garbage.write_text(
        "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n"
    )
    assert "no readable PEM private key" in _refusal(server.cert, garbage)
    expired = ca.issue("expired", valid_from=timedelta(days=-10), valid_for=timedelta(days=1))
    assert "expired on" in _refusal(expired.cert, expired.key)
    future = ca.issue("future", valid_from=timedelta(days=2))
    assert "is not valid before" in _refusal(future.cert, future.key)
    for message in (missing, mismatch):
        assert "PRIVATE KEY" not in message and key_text[40:80] not in message


def test_a_passphrase_protected_key_is_refused_with_a_reason(
    ca: CertAuthority, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    server = ca.issue("server")
    key = serialization.load_pem_private_key(server.key.read_bytes(), password=None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass"),
        )
    )
    assert "encrypted with a passphrase" in _refusal(server.cert, locked)


def test_a_certificate_without_its_key_is_refused_by_the_settings(ca: CertAuthority) -> None:
    server = ca.issue("server")
    with pytest.raises(SettingsError, match="TEMPORAL_TLS_KEY is not set"):
        load_settings(TEMPORAL_TLS_CERT=str(server.cert))
    with pytest.raises(SettingsError, match="R2C_TLS_CERT is not set"):
        load_settings(R2C_TLS_KEY=str(server.key))
    with pytest.raises(SettingsError, match="R2C_TLS_MIN_VERSION"):
        load_settings(R2C_TLS_MIN_VERSION="1.1")


def test_the_temporal_api_key_is_never_shown() -> None:
    settings = load_settings(TEMPORAL_API_KEY="tk-very-secret-value")
    assert "tk-very-secret-value" not in repr(settings)
    assert "tk-very-secret-value" not in str(settings)
    with pytest.raises(SettingsError) as err:
        load_settings(TEMPORAL_API_KEY="x" * 9000)
    assert "TEMPORAL_API_KEY" in str(err.value) and "xxxx" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        ({"env": "staging", "host": "0.0.0.0"}, True),
        ({"env": "production", "host": "10.1.2.3"}, True),
        ({"env": "production", "host": "::"}, True),
        ({"env": "production", "host": "0.0.0.0", "allow_plaintext": True}, False),
        ({"env": "production", "host": "127.0.0.1"}, False),
        ({"env": "production", "host": "::1"}, False),
        ({"env": "production", "host": "localhost"}, False),
        ({"env": "development", "host": "0.0.0.0"}, False),
    ],
)
def test_plain_http_on_a_public_address_is_refused_outside_development(
    overrides: dict[str, object], refused: bool
) -> None:
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if not refused:
        require_secure_transport(settings, "api")
        return
    with pytest.raises(SettingsError) as err:
        require_secure_transport(settings, "api")
    message = str(err.value)
    assert "unencrypted" in message
    assert "R2C_TLS_CERT" in message and "R2C_ALLOW_PLAINTEXT=true" in message


def test_with_a_certificate_the_api_may_bind_a_public_address(ca: CertAuthority) -> None:
    server = ca.issue("server")
    settings = Settings(env="production", host="0.0.0.0", tls_cert=server.cert, tls_key=server.key)
    require_secure_transport(settings, "api")


def test_the_worker_refuses_plaintext_metrics_on_a_public_address() -> None:
    settings = Settings(env="production", host="0.0.0.0")
    with pytest.raises(SettingsError, match="R2C_WORKER_METRICS_PORT=0"):
        require_secure_transport(settings, "worker")
    require_secure_transport(settings.model_copy(update={"worker_metrics_port": 0}), "worker")


def test_temporal_tls_settings_become_the_sdk_config(ca: CertAuthority) -> None:
    client = ca.issue("client", client=True)
    assert temporal_tls(Settings()) is None
    assert temporal_tls(Settings(temporal_tls=True)) is True
    config = temporal_tls(
        Settings(
            temporal_tls_ca=ca.pem,
            temporal_tls_cert=client.cert,
            temporal_tls_key=client.key,
            temporal_tls_server_name="temporal.internal",
        )
    )
    assert isinstance(config, TLSConfig)
    assert config.server_root_ca_cert == ca.pem.read_bytes()
    assert config.client_cert == client.cert.read_bytes()
    assert config.client_private_key == client.key.read_bytes()
    assert config.domain == "temporal.internal"
    expired = ca.issue(
        "old", client=True, valid_from=timedelta(days=-9), valid_for=timedelta(days=1)
    )
    with pytest.raises(SettingsError, match="TEMPORAL_TLS_CERT=.* expired"):
        temporal_tls(Settings(temporal_tls_cert=expired.cert, temporal_tls_key=expired.key))


def test_up_makes_its_ca_once_with_private_keys(tmp_path: Path) -> None:
    files, issued = ensure_local_tls(tmp_path, "127.0.0.1")
    assert issued
    for key in (files.ca_key, files.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.folder.stat().st_mode) == 0o700
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca.read_bytes()))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    load_pair("R2C_TLS_CERT", files.cert, "R2C_TLS_KEY", files.key)

    before = {p: p.read_bytes() for p in (files.ca, files.ca_key, files.cert, files.key)}
    again, issued = ensure_local_tls(tmp_path, "127.0.0.1")
    assert not issued and again == files
    assert {p: p.read_bytes() for p in before} == before


def test_the_server_certificate_is_renewed_near_expiry_or_for_another_host(
    tmp_path: Path,
) -> None:
    files, _ = ensure_local_tls(tmp_path, "127.0.0.1")
    ca_before, cert_before = files.ca.read_bytes(), files.cert.read_bytes()
    _, issued = ensure_local_tls(tmp_path, "127.0.0.1", now=datetime.now(UTC) + timedelta(days=50))
    assert not issued
    _, issued = ensure_local_tls(tmp_path, "127.0.0.1", now=datetime.now(UTC) + timedelta(days=70))
    assert issued and files.cert.read_bytes() != cert_before
    assert files.ca.read_bytes() == ca_before  # the CA a developer trusted stays

    _, issued = ensure_local_tls(tmp_path, "build-box.local")
    assert issued
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "build-box.local" in sans.get_values_for_type(x509.DNSName)
    assert files.ca.read_bytes() == ca_before


def test_a_damaged_ca_is_replaced_and_the_server_certificate_with_it(tmp_path: Path) -> None:
    files, _ = ensure_local_tls(tmp_path, "127.0.0.1")
    files.ca_key.write_text("damaged")
    _, issued = ensure_local_tls(tmp_path, "127.0.0.1")
    assert issued
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca.read_bytes()))


@pytest.mark.parametrize("process", ["api", "worker", "up"])
def test_the_commands_refuse_plain_http_on_a_public_address_in_production(
    tmp_path: Path, process: str
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "R2C_ENV": "production",
        "R2C_HOME": str(tmp_path / "home"),
        "R2C_ADMIN_API_KEY": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli", process],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "R2C_HOST=0.0.0.0 is not a loopback address" in said
    assert "R2C_ALLOW_PLAINTEXT=true" in said
    assert "Traceback" not in said


def test_ups_prometheus_scrapes_the_api_over_https_with_the_local_ca(tmp_path: Path) -> None:
    files, _ = ensure_local_tls(tmp_path, "127.0.0.1")
    settings = Settings(tls_cert=files.cert, tls_key=files.key)
    jobs = {j["job_name"]: j for j in render_config(settings, tmp_path)["scrape_configs"]}
    assert jobs["r2c-api"]["scheme"] == "https"
    assert jobs["r2c-api"]["tls_config"] == {"ca_file": str(files.ca)}
    plain = {j["job_name"]: j for j in render_config(Settings(), tmp_path)["scrape_configs"]}
    assert "scheme" not in plain["r2c-api"]


def test_the_cli_api_client_trusts_r2c_ca_file(
    tmp_path: Path, ca: CertAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("R2C_CA_FILE", raising=False)
    assert verify() is True
    monkeypatch.setenv("R2C_CA_FILE", str(ca.pem))
    context = verify()
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    monkeypatch.setenv("R2C_CA_FILE", str(tmp_path / "absent.pem"))
    with pytest.raises(ConfigError, match="R2C_CA_FILE=.* is not a readable file"):
        verify()
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    monkeypatch.setenv("R2C_CA_FILE", str(not_pem))
    with pytest.raises(ConfigError, match="holds no PEM CA certificate"):
        verify()


def test_ups_children_talk_plain_grpc_to_the_embedded_temporal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TLS settings meant for another Temporal must not reach children of the embedded one.
    monkeypatch.setenv("TEMPORAL_API_KEY", "tk-for-the-cloud")
    monkeypatch.setenv("TEMPORAL_TLS", "true")
    embedded = Supervisor(Settings(home=tmp_path))
    env = embedded._service("worker").env
    assert env["TEMPORAL_API_KEY"] == "" and env["TEMPORAL_TLS"] == "false"
    child = load_settings(**{k: v for k, v in env.items() if k.startswith("TEMPORAL_")})
    assert temporal_tls(child) is None and child.temporal_api_key is None

    external = Supervisor(Settings(home=tmp_path, temporal_address="temporal.example:7233"))
    env = external._service("worker").env
    assert env["TEMPORAL_API_KEY"] == "tk-for-the-cloud" and env["TEMPORAL_TLS"] == "true"
