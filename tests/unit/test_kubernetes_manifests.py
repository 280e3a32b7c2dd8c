"""deploy/kubernetes: each overlay renders (`kubectl kustomize`), every object it renders is
valid for Kubernetes 1.33 (kubernetes-validate, strict: no unknown field), and the manifests
do what docs/production.md says (probes, limits, non-root, pinned image, the PDB and the HPA
aimed at the API, the workers' grace period sized from the code).

Custom resources (ServiceMonitor, ExternalSecret) have no schema in kubernetes-validate, and
their CRDs cannot be fetched here: their `metadata` is validated as an ObjectMeta and their
label selectors as LabelSelectors with Kubernetes's own schemas, and the rest against the
fields their operators require (a small schema below, taken from the CRDs' required fields).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("staging", "production")
VERSION = "1.33.0"
IMAGE = re.compile(r"^ghcr\.io/readme-to-cicd/r2c:\d+\.\d+\.\d+$")
API_LABELS = {"app.kubernetes.io/name": "r2c", "app.kubernetes.io/component": "api"}

_REF = {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}
CUSTOM_SPECS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["selector", "endpoints"],
        "properties": {
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["port"],
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string", "pattern": "^/"},
                        "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
                        "scrapeTimeout": {"type": "string", "pattern": r"^\d+[smh]$"},
                    },
                },
            }
        },
    },
    ("external-secrets.io/v1beta1", "ExternalSecret"): {
        "type": "object",
        "required": ["secretStoreRef", "target", "data"],
        "properties": {
            "refreshInterval": {"type": "string", "pattern": r"^\d+[smh]$"},
            "secretStoreRef": {
                "type": "object",
                "required": ["name", "kind"],
                "properties": {"kind": {"enum": ["SecretStore", "ClusterSecretStore"]}},
            },
            "target": {"type": "object", "required": ["name"]},
            "data": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["secretKey", "remoteRef"],
                    "properties": {"remoteRef": _REF},
                },
            },
        },
    },
}


@pytest.fixture(autouse=True, scope="module")
def _schemas_read_once() -> Iterator[None]:
    # kubernetes-validate reads its 1 MB of definitions again for every object; the schemas
    # are the same files each time.
    with pytest.MonkeyPatch.context() as patch:
        read = kubernetes_validate.utils.schema_contents
        patch.setattr(kubernetes_validate.utils, "schema_contents", cache(read))
        yield


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def by_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in rendered(overlay) if o["kind"] == kind}


def validate_builtin_part(data: dict[str, Any], kind: str) -> None:
    """A part of a custom resource that is a Kubernetes type (ObjectMeta, LabelSelector)."""
    kubernetes_validate.validate({**data, "apiVersion": "meta/v1", "kind": kind}, VERSION)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid(overlay: str) -> None:
    builtin = custom = 0
    for obj in rendered(overlay):
        key = (obj["apiVersion"], obj["kind"])
        if key in CUSTOM_SPECS:
            validate_builtin_part(obj["metadata"], "ObjectMeta")
            jsonschema.validate(obj["spec"], CUSTOM_SPECS[key])
            if "selector" in obj["spec"]:
                validate_builtin_part(obj["spec"]["selector"], "LabelSelector")
            custom += 1
        else:
            kubernetes_validate.validate(obj, VERSION, strict=True)
            builtin += 1
        assert obj["metadata"].get("namespace"), f"{key} has no namespace"
    print(f"{overlay}: {builtin} objects validated against Kubernetes {VERSION}, {custom} custom")
    assert builtin >= 14 and custom == 2


def test_an_invalid_object_is_caught() -> None:
    # The validation is strict: a misspelt field fails, so the test above means something.
    deployment = dict(by_kind("staging", "Deployment")["r2c-api"])
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_are_probed_limited_non_root_and_pinned(overlay: str) -> None:
    deployments = by_kind(overlay, "Deployment")
    assert set(deployments) == {"r2c-api", "r2c-worker"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert IMAGE.match(container["image"]), container["image"]
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["path"], f"{name}: no {probe}"
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests)
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context["readOnlyRootFilesystem"] is True
            # The generated ConfigMap, by its hashed name: a change of it rolls the pods.
            (env,) = (
                r["configMapRef"]["name"] for r in container["envFrom"] if "configMapRef" in r
            )
            assert env.startswith("r2c-env-") and env in by_kind(overlay, "ConfigMap")
    api = deployments["r2c-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pdb_hpa_and_service_aim_at_the_api(overlay: str) -> None:
    api = by_kind(overlay, "Deployment")["r2c-api"]
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert API_LABELS.items() <= pod_labels.items()
    pdb = by_kind(overlay, "PodDisruptionBudget")["r2c-api"]
    selected = pdb["spec"]["selector"]["matchLabels"]
    assert selected.items() <= pod_labels.items() and selected == API_LABELS
    worker_labels = by_kind(overlay, "Deployment")["r2c-worker"]["spec"]["template"]
    assert not selected.items() <= worker_labels["metadata"]["labels"].items()
    hpa = by_kind(overlay, "HorizontalPodAutoscaler")["r2c-api"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "r2c-api")
    assert (
        hpa["spec"]["minReplicas"] >= 2 and pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    )
    service = by_kind(overlay, "Service")["r2c-api"]
    assert service["spec"]["selector"] == API_LABELS
    monitor = by_kind(overlay, "ServiceMonitor")["r2c"]["spec"]["selector"]["matchLabels"]
    for name in ("r2c-api", "r2c-worker"):  # the `job` names deploy/prometheus/alerts.yml uses
        assert monitor.items() <= by_kind(overlay, "Service")[name]["metadata"]["labels"].items()


def test_overlays_differ_in_replicas_resources_and_hosts() -> None:
    def summary(overlay: str) -> tuple[Any, ...]:
        deployments = by_kind(overlay, "Deployment")
        env = by_kind(overlay, "ConfigMap")
        (r2c_env,) = (c for name, c in env.items() if name.startswith("r2c-env"))
        return (
            deployments["r2c-api"]["spec"]["replicas"],
            deployments["r2c-worker"]["spec"]["replicas"],
            deployments["r2c-api"]["spec"]["template"]["spec"]["containers"][0]["resources"],
            by_kind(overlay, "Ingress")["r2c-api"]["spec"]["rules"][0]["host"],
            r2c_env["data"]["R2C_ENV"],
            rendered(overlay)[0]["metadata"]["namespace"],
        )

    staging, production = summary("staging"), summary("production")
    assert all(a != b for a, b in zip(staging, production, strict=True)), (staging, production)
    assert staging[4:] == ("staging", "r2c-staging") and production[4:] == ("production", "r2c")
    # The app.json each environment reads is mounted where config_dir()/<R2C_ENV> looks.
    for overlay in OVERLAYS:
        for deployment in by_kind(overlay, "Deployment").values():
            volume = deployment["spec"]["template"]["spec"]["volumes"][0]
            assert volume["configMap"]["items"][0]["path"] == f"{overlay}/app.json"


def test_no_secret_value_is_in_the_manifests() -> None:
    for overlay in OVERLAYS:
        assert not by_kind(overlay, "Secret")
        for config_map in by_kind(overlay, "ConfigMap").values():
            for key in config_map["data"]:
                assert not re.search(r"PASSWORD|TOKEN|SECRET|POSTGRES_URL|REDIS_URL", key), key
        secret_refs = {
            ref["secretRef"]["name"]
            for d in by_kind(overlay, "Deployment").values()
            for ref in d["spec"]["template"]["spec"]["containers"][0]["envFrom"]
            if "secretRef" in ref
        }
        external = by_kind(overlay, "ExternalSecret")
        assert secret_refs == {e["spec"]["target"]["name"] for e in external.values()}


# ------------------------------------------------------------- the workers' grace period


def _seconds(node: ast.expr, constants: dict[str, ast.expr]) -> float | None:
    if isinstance(node, ast.Name) and node.id in constants:
        return _seconds(constants[node.id], constants)
    if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("timedelta"):
        units = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        return timedelta(**units).total_seconds()
    return None


def longest_heartbeat_and_drain() -> tuple[float, float]:
    """The longest activity heartbeat timeout in workflows/ and the worker's
    graceful_shutdown_timeout (workers/main.py), read from the code."""
    heartbeats: list[float] = []
    for path in (REPO / "workflows").rglob("*.py"):
        tree = ast.parse(path.read_text())
        constants = {
            t.id: n.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            pairs: list[tuple[str | None, ast.expr]] = []
            if isinstance(node, ast.Call):
                pairs = [(k.arg, k.value) for k in node.keywords]
            elif isinstance(node, ast.Dict):
                pairs = [
                    (str(k.value) if isinstance(k, ast.Constant) else None, v)
                    for k, v in zip(node.keys, node.values, strict=True)
                ]
            for name, value in pairs:
                if name == "heartbeat_timeout" and (seconds := _seconds(value, constants)):
                    heartbeats.append(seconds)
    drain = None
    for node in ast.walk(ast.parse((REPO / "workers" / "main.py").read_text())):
        if isinstance(node, ast.keyword) and node.arg == "graceful_shutdown_timeout":
            drain = _seconds(node.value, {})
    assert heartbeats and drain is not None
    return max(heartbeats), drain


def test_the_workers_grace_period_covers_drain_and_the_longest_heartbeat() -> None:
    heartbeat, drain = longest_heartbeat_and_drain()
    assert heartbeat >= 30  # the release's wait (workflows/release.py) at the time of writing
    for overlay in OVERLAYS:
        pod = by_kind(overlay, "Deployment")["r2c-worker"]["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        assert grace >= drain + heartbeat, (grace, drain, heartbeat)
        assert grace <= drain + heartbeat + 30, "not much longer either: rollouts wait for it"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert compose["services"]["worker"]["stop_grace_period"] == f"{grace}s"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_settings_production_needs_are_wired(overlay: str) -> None:
    # The same derivation as for docker-compose.yml: from core/settings.py, not a list here.
    from tests.unit.test_compose import (
        ALTERNATIVES,
        NOT_READ_BY,
        production_needs,
        variables_read_by_code,
    )

    config_maps = by_kind(overlay, "ConfigMap")
    (secret,) = by_kind(overlay, "ExternalSecret").values()
    from_secret = {item["secretKey"] for item in secret["spec"]["data"]}
    for name, deployment in by_kind(overlay, "Deployment").items():
        process = name.removeprefix("r2c-")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        names = {e["name"] for e in container.get("env", [])} | from_secret
        for ref in container["envFrom"]:
            if "configMapRef" in ref:
                names |= set(config_maps[ref["configMapRef"]["name"]]["data"])
        assert not names - variables_read_by_code(), names - variables_read_by_code()
        missing = {
            alias
            for alias in production_needs()
            if not ({alias} | ALTERNATIVES.get(alias, set())) & names
            and (process, alias) not in NOT_READ_BY
        }
        assert not missing, f"{overlay} {name} lacks {missing}"
