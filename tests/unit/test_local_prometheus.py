"""`r2c up --with-prometheus`'s configuration: valid for promtool, with real paths and ports,
the alert rules beside it; and a clear start-up error when Prometheus is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import cli.prometheus
from cli.prometheus import PrometheusMissingError, local_prometheus, write_config
from core.settings import Settings


def test_the_rendered_config_is_valid_and_names_real_paths_and_ports(tmp_path: Path) -> None:
    settings = Settings(metrics_port=19191, worker_metrics_port=19192, prometheus_port=19190)
    config = write_config(settings, tmp_path)
    assert (tmp_path / "prometheus" / "alerts.yml").is_file()
    tool = shutil.which("promtool") or "/usr/bin/promtool"
    done = subprocess.run(
        [tool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rendered = json.loads(config.read_text())
    jobs = {j["job_name"]: j for j in rendered["scrape_configs"]}
    assert jobs["r2c-api"]["static_configs"] == [{"targets": ["127.0.0.1:19191"]}]
    assert jobs["r2c-worker"]["static_configs"] == [{"targets": ["127.0.0.1:19192"]}]
    provider_files = [str(tmp_path / "infra" / "_prometheus" / "*.json")]
    assert jobs["r2c-router"]["file_sd_configs"][0]["files"] == provider_files
    assert jobs["r2c-instance"]["file_sd_configs"][0]["files"] == provider_files
    assert rendered["global"]["scrape_interval"] == "5s"

    child = local_prometheus(settings, tmp_path)
    assert "--web.listen-address=127.0.0.1:19190" in child.argv
    assert f"--storage.tsdb.path={tmp_path / 'prometheus' / 'data'}" in child.argv
    assert child.log_file == tmp_path / "logs" / "prometheus.log"


def test_without_worker_metrics_there_is_no_worker_job(tmp_path: Path) -> None:
    config = write_config(Settings(worker_metrics_port=0), tmp_path)
    jobs = [j["job_name"] for j in json.loads(config.read_text())["scrape_configs"]]
    assert "r2c-worker" not in jobs and "r2c-api" in jobs and "temporal" in jobs


def test_an_external_temporal_is_not_scraped_as_the_embedded_one(tmp_path: Path) -> None:
    config = write_config(Settings(temporal_address="temporal.example:7233"), tmp_path)
    jobs = [j["job_name"] for j in json.loads(config.read_text())["scrape_configs"]]
    assert "temporal" not in jobs


def test_a_missing_prometheus_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.prometheus, "BINARY", str(tmp_path / "no-prometheus"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PrometheusMissingError, match="apt-get install prometheus"):
        local_prometheus(Settings(), tmp_path)
    assert not (tmp_path / "prometheus").exists()
