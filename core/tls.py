"""TLS for what the system serves (the API, its metrics) and for its Temporal client.

Certificate and key files are checked once, at start, so a wrong file is one clear message
naming the setting (never a handshake failure later, never the key's bytes): readable PEM, the
key matches the certificate, the certificate is valid now. The servers accept TLS 1.3 only,
unless R2C_TLS_MIN_VERSION=1.2.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from temporalio.service import TLSConfig

from core.settings import Settings, SettingsError

MAX_PEM_BYTES = 1024 * 1024  # a certificate chain or key file is a few KB; refuse huge files

_MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class CertificatePair:
    """A checked certificate (chain) and its private key, as PEM bytes."""

    cert_pem: bytes
    key_pem: bytes
    not_after: datetime


def _read(name: str, path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except OSError as err:
        raise SettingsError(f"{name}={path} cannot be read ({err.strerror})") from None
    if len(data) > MAX_PEM_BYTES:
        raise SettingsError(f"{name}={path} is larger than {MAX_PEM_BYTES} bytes; expected PEM")
    return data


def read_certificates(name: str, path: Path) -> tuple[bytes, list[x509.Certificate]]:
    """The PEM bytes of a certificate file and its certificates (at least one)."""
    data = _read(name, path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise SettingsError(
            f"{name}={path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        ) from None
    return data, certs


def load_pair(cert_name: str, cert_path: Path, key_name: str, key_path: Path) -> CertificatePair:
    """Check a certificate and its key; the message of any problem names the settings and
    the files, never the key's content."""
    cert_pem, certs = read_certificates(cert_name, cert_path)
    leaf = certs[0]
    now = datetime.now(UTC)
    if leaf.not_valid_after_utc <= now:
        raise SettingsError(
            f"{cert_name}={cert_path} expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC;"
            " renew it (`r2c up --tls` renews its own)"
        )
    if leaf.not_valid_before_utc > now:
        raise SettingsError(
            f"{cert_name}={cert_path} is not valid before"
            f" {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (is the clock right?)"
        )
    key_pem = _read(key_name, key_path)
    try:
        key = load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise SettingsError(
            f"{key_name}={key_path} is encrypted with a passphrase; give an unencrypted key"
            " (readable only by the service's user)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        # The library's message may quote the file; ours says only what is wrong with it.
        raise SettingsError(f"{key_name}={key_path} holds no readable PEM private key") from None
    if key.public_key() != leaf.public_key():
        raise SettingsError(
            f"{key_name}={key_path} is not the private key of the certificate in"
            f" {cert_name}={cert_path}"
        )
    return CertificatePair(cert_pem, key_pem, leaf.not_valid_after_utc)


def min_version(settings: Settings) -> ssl.TLSVersion:
    return _MIN_VERSIONS[settings.tls_min_version]


def serves_tls(settings: Settings) -> bool:
    return settings.tls_cert is not None and settings.tls_key is not None


def check_server_files(settings: Settings) -> None:
    """Refuse to start with a certificate or key that cannot serve (see `load_pair`)."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        load_pair("R2C_TLS_CERT", settings.tls_cert, "R2C_TLS_KEY", settings.tls_key)


def server_context(settings: Settings) -> ssl.SSLContext:
    """The SSL context of the API's port: the checked certificate, TLS 1.3 at least (or 1.2
    when configured)."""
    if settings.tls_cert is None or settings.tls_key is None:
        raise SettingsError("R2C_TLS_CERT and R2C_TLS_KEY are not set")
    check_server_files(settings)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = min_version(settings)
    try:
        context.load_cert_chain(certfile=settings.tls_cert, keyfile=settings.tls_key)
    except (OSError, ssl.SSLError):
        raise SettingsError(
            f"R2C_TLS_CERT={settings.tls_cert} and R2C_TLS_KEY={settings.tls_key} cannot be"
            " loaded by OpenSSL"
        ) from None
    return context


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_secure_transport(settings: Settings, process: str) -> None:
    """Outside development, a process that listens on a non-loopback address serves TLS or
    was explicitly allowed not to (R2C_ALLOW_PLAINTEXT=true, behind a TLS-terminating proxy):
    API keys and deployment data must not cross a network in clear by accident."""
    if settings.env == "development" or settings.allow_plaintext or is_loopback(settings.host):
        return
    why = (
        f"R2C_ENV={settings.env} and R2C_HOST={settings.host} is not a loopback address,"
        " so API keys and data would cross the network unencrypted"
    )
    if process == "api" and not serves_tls(settings):
        raise SettingsError(
            f"refusing to serve plain HTTP: {why}. Set R2C_TLS_CERT and R2C_TLS_KEY (PEM files)"
            " to serve HTTPS, or R2C_ALLOW_PLAINTEXT=true if a TLS-terminating proxy is in"
            " front, or bind R2C_HOST=127.0.0.1"
        )
    if process == "worker" and settings.worker_metrics_port:
        # The worker's only listener is the Temporal SDK's metrics exporter, which has no TLS.
        raise SettingsError(
            f"refusing to serve the worker's Temporal SDK metrics in plain HTTP: {why}; that"
            " exporter cannot serve TLS. Set R2C_WORKER_METRICS_PORT=0 (no worker metrics),"
            " bind R2C_HOST=127.0.0.1, or R2C_ALLOW_PLAINTEXT=true if the network is private"
        )


def temporal_tls(settings: Settings) -> TLSConfig | bool | None:
    """The `tls` argument of `Client.connect`: a TLSConfig when any TEMPORAL_TLS_* file or
    name is set (files checked first), True for TEMPORAL_TLS alone (system CAs), None
    otherwise (the SDK's default: TLS exactly when an API key is given)."""
    s = settings
    if not (s.temporal_tls_ca or s.temporal_tls_cert or s.temporal_tls_server_name):
        return True if s.temporal_tls else None
    ca: bytes | None = None
    if s.temporal_tls_ca is not None:
        ca, _ = read_certificates("TEMPORAL_TLS_CA", s.temporal_tls_ca)
    cert = key = None
    if s.temporal_tls_cert is not None and s.temporal_tls_key is not None:
        pair = load_pair(
            "TEMPORAL_TLS_CERT", s.temporal_tls_cert, "TEMPORAL_TLS_KEY", s.temporal_tls_key
        )
        cert, key = pair.cert_pem, pair.key_pem
    return TLSConfig(
        server_root_ca_cert=ca,
        domain=s.temporal_tls_server_name,
        client_cert=cert,
        client_private_key=key,
    )
