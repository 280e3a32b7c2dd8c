"""`r2c up --with-prometheus`: Debian's Prometheus, scraping what `up` runs.

The configuration is rendered at each start into `R2C_HOME/prometheus/prometheus.yml` from the
same jobs as `deploy/prometheus/prometheus.yml`, with real paths and ports instead of its
placeholders, and `alerts.yml` copied beside it: the API and the worker on their metrics ports,
the embedded Temporal server (the address `up` wrote for it), and the local provider's routers
and instances from the files the worker keeps in `R2C_HOME/infra/_prometheus/`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cli.processes import Child, environ_with
from cli.temporal_server import metrics_targets_file
from core.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
BINARY = "/usr/bin/prometheus"
# Short enough for an analysis on one machine to see a few samples a minute.
SCRAPE_INTERVAL = "5s"
# A development stack's history: enough to look back on a day's deployments, small on disk.
RETENTION = "2d"
SCRAPE_TIMEOUT = "4s"


class PrometheusMissingError(RuntimeError):
    """Prometheus is not installed: `up` says how to install it (a RuntimeError, so `up`
    reports it as a start-up error, without a traceback)."""


def _local_address(host: str, port: int) -> str:
    """The address Prometheus scrapes: a wildcard bind address becomes the loopback one."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _by_role(job: str, role: str, files: str, honor_labels: bool) -> dict[str, Any]:
    """A job of the provider's targets: the files hold both roles; `role` picks one."""
    return {
        "job_name": job,
        "honor_labels": honor_labels,
        "metrics_path": "/metrics",
        "file_sd_configs": [{"files": [files], "refresh_interval": "5s"}],
        "relabel_configs": [
            {"source_labels": ["role"], "regex": role, "action": "keep"},
            {"regex": "role", "action": "labeldrop"},
        ],
    }


def _api_tls(settings: Settings, home: Path) -> dict[str, Any]:
    """With TLS the API's metrics port is https: verified with `up --tls`'s own CA; a
    certificate from elsewhere may not name the loopback address scraped here, and this is
    our own child on this machine, so it is not verified."""
    if settings.tls_cert is None:
        return {}
    local_ca = home / "tls" / "ca.pem"
    if settings.tls_cert.parent.resolve() == local_ca.parent.resolve() and local_ca.is_file():
        return {"scheme": "https", "tls_config": {"ca_file": str(local_ca)}}
    return {"scheme": "https", "tls_config": {"insecure_skip_verify": True}}


def render_config(settings: Settings, home: Path) -> dict[str, Any]:
    """The configuration of `up`'s Prometheus (JSON is YAML)."""
    provider_files = str(home / "infra" / "_prometheus" / "*.json")
    jobs: list[dict[str, Any]] = [
        {
            "job_name": "r2c-api",
            "static_configs": [{"targets": [_local_address(settings.host, settings.metrics_port)]}],
            **_api_tls(settings, home),
        },
    ]
    if settings.worker_metrics_port:
        jobs.append(
            {
                "job_name": "r2c-worker",
                "static_configs": [
                    {"targets": [_local_address(settings.host, settings.worker_metrics_port)]}
                ],
            }
        )
    if settings.temporal_address is None:
        # The embedded server only: a file left by an earlier embedded run must not make an
        # external Temporal look down.
        jobs.append(
            {
                "job_name": "temporal",
                "file_sd_configs": [
                    {"files": [str(metrics_targets_file(home))], "refresh_interval": "5s"}
                ],
            }
        )
    jobs += [
        # The routers label their own series with component and environment: honoured.
        _by_role("r2c-router", "router", provider_files, honor_labels=True),
        _by_role("r2c-instance", "instance", provider_files, honor_labels=False),
    ]
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_TIMEOUT,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "rule_files": ["alerts.yml"],
        "scrape_configs": jobs,
    }


def prometheus_binary() -> str:
    if Path(BINARY).is_file():
        return BINARY
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusMissingError(
            f"--with-prometheus needs Prometheus, and {BINARY} is missing: install it "
            "(`sudo apt-get install prometheus`, then `sudo systemctl disable --now prometheus` "
            "if you do not want the system's own), or unset R2C_WITH_PROMETHEUS"
        )
    return found


def write_config(settings: Settings, home: Path) -> Path:
    """Render the configuration and copy the alert rules into `home/prometheus/`."""
    folder = home / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOY / "alerts.yml", folder / "alerts.yml")
    config = folder / "prometheus.yml"
    tmp = config.with_name("prometheus.yml.tmp")
    tmp.write_text(json.dumps(render_config(settings, home), indent=2) + "\n")
    tmp.replace(config)
    return config


def local_prometheus(settings: Settings, home: Path) -> Child:
    """The (not yet started) Prometheus child: its configuration under `home`, its data in
    `home`, listening on 127.0.0.1:`settings.prometheus_port`, logging to a file."""
    binary = prometheus_binary()
    config = write_config(settings, home)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'prometheus' / 'data'}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
    ]
    return Child("prometheus", argv, environ_with(), log_file=home / "logs" / "prometheus.log")
