"""docker-compose.yml, checked without running a container: Compose parses it (podman-compose
`config`, with .env.example as the env file) and refuses it without the secrets; every image
is pinned; the settings the application reads are wired into `api` and `worker` as production
needs them (the list comes from core/settings.py, not from a list kept here) and load; every
mounted file exists and passes its own tool's check; the Grafana dashboards ask for metrics
our code exports.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import shutil
import subprocess
import typing
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic.fields import FieldInfo

from core.settings import Settings, load_settings
from core.tls import is_loopback, require_secure_transport
from core.tracing import ENDPOINT_VARIABLES

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
SCRAPES = REPO / "tests" / "integration" / "grafana_data" / "scrapes.json.gz"
CODE = ("api", "core", "activities", "workers", "cli", "workflows")
APP_SERVICES = ("api", "worker")
# The specification's ports (the service behind its load balancer).
SPEC_PORTS = {
    "lb": 8080,
    "prometheus": 9090,
    "grafana": 3000,
    "jaeger": 16686,
    "kibana": 5601,
    "vault": 8200,
}
# Where the code takes either of two ways of saying one thing (core/tracing.py: the standard
# OTLP variables win over JAEGER_ENDPOINT).
ALTERNATIVES = {"JAEGER_ENDPOINT": set(ENDPOINT_VARIABLES)}
# Settings production needs that one process does not read, and why.
NOT_READ_BY = {
    ("worker", "REDIS_URL"): "Redis is shared state of the API replicas only",
    ("worker", "R2C_PAGE_TOKEN_SECRET"): "signs the API's page tokens",
    ("worker", "R2C_UI_PUBLIC_URL"): "the dashboard's address, served by the API",
}


def podman_compose(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    tool = shutil.which("podman-compose") or str(
        Path(__import__("sys").executable).parent / "podman-compose"
    )
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    done = podman_compose("--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def services(config: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = config["services"]
    return found


def test_compose_parses_with_the_example_env_and_refuses_without_secrets(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    assert set(SPEC_PORTS) | {
        "api",
        "worker",
        "temporal",
        "temporal-ui",
        "postgres",
        "redis",
    } <= set(services(rendered))
    assert {"alertmanager", "elasticsearch", "filebeat"} <= set(services(rendered))
    # Without .env (and nothing in the environment), Compose names the first missing secret.
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    done = podman_compose(
        "config", cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    )
    assert done.returncode != 0
    assert "set it in .env" in done.stderr
    # Every required variable has a line in .env.example, with a placeholder, not a value.
    lines = [line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")]
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", "\n".join(lines)))
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required == set(example), "every ${VAR:?} of the compose file, and only those"
    assert set(example.values()) == {"replace-me"}


def test_every_image_is_pinned(rendered: dict[str, Any]) -> None:
    for name, service in services(rendered).items():
        image = service.get("image", "")
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image!r} is not pinned"
    api, worker = services(rendered)["api"], services(rendered)["worker"]
    assert api["image"] == worker["image"] and "build" in api and "build" in worker


def test_services_have_health_checks_conditions_restarts_and_named_volumes(
    rendered: dict[str, Any],
) -> None:
    declared = set(rendered.get("volumes", {}))
    for name, service in services(rendered).items():
        one_shot = service.get("restart") == "no"
        if not one_shot:
            assert service.get("restart") == "unless-stopped", name
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition.get("condition") in (
                "service_healthy",
                "service_completed_successfully",
            ), f"{name} -> {dependency}"
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
    for name in APP_SERVICES:
        assert services(rendered)[name]["deploy"]["replicas"] == 2


def test_ports_are_those_of_the_specification(rendered: dict[str, Any]) -> None:
    for name, port in SPEC_PORTS.items():
        published = {str(p).split(":")[0] for p in services(rendered)[name].get("ports", [])}
        assert str(port) in published, f"{name} should publish {port}"
    # The replicas themselves publish nothing (two could not share a host port): lb does.
    assert not any(services(rendered)[name].get("ports") for name in APP_SERVICES)
    haproxy = (REPO / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    port = services(rendered)["api"]["environment"]["PORT"]
    assert f"server-template api 8 api:{port}" in haproxy
    assert "option httpchk GET /ready" in haproxy


# ---------------------------------------------------------------- the application's settings


@cache
def code_trees(*words: str) -> tuple[ast.Module, ...]:
    """The application's modules that mention one of `words`, parsed once (parsing them all
    takes seconds on a busy machine; a module without the word holds nothing to find)."""
    texts = (path.read_text() for folder in CODE for path in (REPO / folder).rglob("*.py"))
    return tuple(ast.parse(text) for text in texts if any(word in text for word in words))


def env_name(name: str, field: FieldInfo) -> str:
    return str(field.validation_alias or name)


@cache
def variables_read_by_code() -> frozenset[str]:
    """Every variable the application reads: its settings (the aliases of core/settings.py)
    and the names the code reads from os.environ directly (R2C_CONFIG_DIR, OTEL_*, ...)."""
    names = {env_name(n, f) for n, f in Settings.model_fields.items()}
    names |= set(ENDPOINT_VARIABLES)
    for tree in code_trees("os.environ", "getenv"):
        for node in ast.walk(tree):
            read = (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("os.environ.get", "os.getenv")
                or isinstance(node, ast.Subscript)
                and ast.unparse(node.value) == "os.environ"
            )
            if not read:
                continue
            arg = node.args[0] if isinstance(node, ast.Call) and node.args else None
            arg = node.slice if isinstance(node, ast.Subscript) else arg
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return frozenset(names)


def production_needs() -> dict[str, str]:
    """The settings whose default only fits one development machine, derived from their
    definitions: an unset address (the embedded server, or state kept in process), a key ring
    that can live in Vault (replicas must share it), a value every replica must share, the
    environment, a loopback host, a home relative to the working directory."""
    needs: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        alias = env_name(name, field)
        description = field.description or ""
        if field.default is None and alias.endswith(("_URL", "_ADDRESS", "_ENDPOINT")):
            needs[alias] = "unset means embedded, local or in process"
        elif "vault" in typing.get_args(field.annotation):
            needs[alias] = "vault: one key ring for every replica"
        elif "every API replica" in description:
            needs[alias] = "the same value on every replica"
        elif field.default == "development" or (
            isinstance(field.default, str) and is_loopback(field.default)
        ):
            needs[alias] = "the default is development's"
        elif isinstance(field.default, Path) and not field.default.is_absolute():
            needs[alias] = "relative to the working directory"
    return needs


def test_production_settings_are_derived_from_the_settings_module() -> None:
    # Not a list kept here: a sanity check that the rules find what docs/production.md lists.
    needs = production_needs()
    for alias in ("POSTGRES_URL", "TEMPORAL_ADDRESS", "VAULT_URL", "REDIS_URL", "R2C_ENV"):
        assert alias in needs
    assert needs["R2C_PAYLOAD_KEYS"].startswith("vault") and "R2C_PAGE_TOKEN_SECRET" in needs


@pytest.mark.parametrize("process", APP_SERVICES)
def test_the_settings_production_needs_are_wired(
    rendered: dict[str, Any], process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {k: str(v) for k, v in services(rendered)[process]["environment"].items()}
    unknown = set(environment) - variables_read_by_code()
    assert not unknown, f"{process} sets variables the application never reads: {unknown}"
    missing = {
        alias: why
        for alias, why in production_needs().items()
        if not ({alias} | ALTERNATIVES.get(alias, set())) & set(environment)
        and (process, alias) not in NOT_READ_BY
    }
    assert not missing, f"{process} lacks settings production needs: {missing}"
    for alias, why in production_needs().items():
        if why.startswith("vault"):
            assert environment.get(alias) == "vault", alias
    # And the process would start with them: the settings load, and its transport is allowed.
    for name in variables_read_by_code():
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    require_secure_transport(settings, process)
    assert settings.env == "production" and settings.home.is_absolute()
    assert settings.database_url.startswith("postgresql+psycopg://r2c:replace-me@postgres:5432/")
    if process == "api":
        temporal_ui = services(rendered)["temporal-ui"]["environment"]
        assert temporal_ui["TEMPORAL_CODEC_ENDPOINT"] == f"{settings.ui_public_url}/codec"
        assert settings.temporal_ui.startswith("http://localhost:8233")


# ---------------------------------------------------------------- mounted files and their checks


def tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which(name) or f"/usr/bin/{name}"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def test_mounted_files_exist_and_pass_their_checks(rendered: dict[str, Any]) -> None:
    mounted: dict[str, Path] = {}
    for name, service in services(rendered).items():
        for volume in service.get("volumes", []):
            source, target = str(volume).split(":")[:2]
            if source.startswith("."):
                path = (REPO / source).resolve()
                assert path.exists(), f"{name} mounts {source}, which does not exist"
                mounted[target] = path
    prometheus = mounted["/etc/prometheus/prometheus.yml"]
    for rule_file in yaml.safe_load(prometheus.read_text())["rule_files"]:
        assert f"/etc/prometheus/{rule_file}" in mounted, f"{rule_file} is not mounted"
    checks = [
        tool("promtool", "check", "config", str(prometheus)),
        tool("promtool", "check", "rules", str(mounted["/etc/prometheus/alerts.yml"])),
        tool("amtool", "check-config", str(mounted["/etc/alertmanager/alertmanager.yml"])),
    ]
    for done in checks:
        assert done.returncode == 0, done.stdout + done.stderr
    # Grafana: the provider reads the folder the dashboards are mounted at, and the datasource
    # is the compose service.
    provider = yaml.safe_load(
        (mounted["/etc/grafana/provisioning/dashboards"] / "r2c.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] in mounted
    datasource = yaml.safe_load(
        (mounted["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    filebeat = yaml.safe_load(mounted["/usr/share/filebeat/filebeat.yml"].read_text())
    assert filebeat["output.elasticsearch"]["password"] == "${ELASTIC_PASSWORD}"


# ---------------------------------------------------------------- Grafana dashboards

_TYPE_LINE = re.compile(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) ")
_FAMILIES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip


@cache
def metrics_our_code_exports() -> frozenset[str]:
    """The families registered in the code: the first argument of prometheus_client's metric
    classes, custom collectors' *MetricFamily and the Temporal SDK meter's create_*() (a
    literal or a module constant), and `# TYPE` lines written by hand (the router's
    exposition)."""
    names: set[str] = set()
    for tree in code_trees(
        "MetricFamily(",
        "Counter(",
        "Gauge(",
        "Histogram(",
        "Summary(",
        "create_counter",
        "create_histogram",
        "create_gauge",
        "# TYPE",
    ):
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                func = ast.unparse(node.func).rsplit(".", 1)[-1]
                first = node.args[0]
                registers = (
                    func in _FAMILIES
                    or func.endswith("MetricFamily")
                    or func.startswith("create_")  # a Temporal SDK meter's instruments
                )
                if registers and isinstance(first, ast.Constant):
                    names.add(str(first.value))
                elif registers and isinstance(first, ast.Name) and first.id in constants:
                    names.add(str(constants[first.id]))
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(_TYPE_LINE.findall(node.value))
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (labels, functions and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        word = match.group()
        if rest.startswith("(") or word.lower() in _PROMQL_WORDS or word.startswith("$"):
            continue
        if text[max(match.start() - 1, 0)] == "$":  # a Grafana variable
            continue
        found.add(word)
    return found


def family(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_grafana_dashboards_parse_and_ask_for_exported_metrics() -> None:
    ours = metrics_our_code_exports()
    assert {"r2c_deployments", "r2c_http_requests_total", "r2c_router_requests_total"} <= ours
    scraped = json.loads(gzip.decompress(SCRAPES.read_bytes()))["targets"]
    # Names of the Temporal SDK and server are not in our code: they must be in the real
    # scrapes of `r2c up` kept for tests/integration/test_grafana_dashboards.py.
    exported_elsewhere = set(
        re.findall(
            r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", json.dumps(scraped).replace("\\n", "\n"), re.M
        )
    )
    boards = sorted(DASHBOARDS.glob("*.json"))
    assert len(boards) >= 4
    asked: set[str] = set()
    for path in boards:
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"]

        def walk(panels: list[dict[str, Any]]) -> None:
            for panel in panels:
                for target in panel.get("targets", []):
                    asked.update(metric_names(target.get("expr", "")))
                walk(panel.get("panels", []))

        walk(board["panels"])
    assert len(asked) > 20
    for name in sorted(asked):
        if name == "up":  # Prometheus's own, per target
            continue
        if name.startswith("r2c_"):
            assert name in ours or family(name) in ours, f"{name} is not registered by our code"
        else:
            assert name in exported_elsewhere, f"{name} is in no scrape of r2c up"
