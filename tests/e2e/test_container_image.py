"""The Dockerfile's image, built and run with podman: the API and a worker as two containers
on the host network, against the session's Temporal dev server and a PostgreSQL database, the
admin key made by the image's own CLI; the demo component deployed through the containerised
API by the containerised worker (local provider: its instances run in the worker's container);
both containers stopped with SIGTERM, exiting 0 promptly.

The base image and the wheels are cached across runs (tests/e2e/container_image.py); the first
run on a machine makes them (a few minutes more; warm, the test takes about 25 s). Image
size and build time are printed.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from cli.demo import demo_spec
from cli.processes import free_port
from tests.e2e.container_image import (
    ImageBuildError,
    Podman,
    base_image,
    build_context,
    dependency_wheels,
)
from tests.support import wait_for_sync

# Production's store whatever the pass: collected in the default pass only (tests/conftest.py).
pytestmark = pytest.mark.own_postgres

IMAGE_UID = 10001  # the Dockerfile's user
STOP_WITHIN = 15.0  # seconds: the processes' own graceful limits are 10 s


@pytest.fixture
def podman() -> Podman:
    try:
        made = Podman.make()
        made.run("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60)
    except ImageBuildError as err:
        pytest.fail(f"podman cannot work on this machine: {err}")
    return made


@pytest.fixture
def image(podman: Podman, tmp_path: Path) -> Iterator[str]:
    """The image, built from the repository as it is now; removed at the end (the cached
    base and the build's layers stay, so the next build reuses them)."""
    began = time.monotonic()
    try:
        base = base_image(podman)
        wheels = dependency_wheels(base)
    except ImageBuildError as err:
        pytest.fail(f"cannot prepare the image's build here: {err}")
    context = build_context(wheels, tmp_path / "context")
    print(f"\nbase image, wheels and context ready in {time.monotonic() - began:.1f} s")
    tag = f"localhost/r2c:test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    # docker format: the OCI format has no HEALTHCHECK.
    podman.run(
        "build", "--format", "docker", "--build-arg", f"BASE={base.tag}", "-t", tag,
        str(context), timeout=600,
    )  # fmt: skip
    seconds = time.monotonic() - started
    size = int(podman.run("image", "inspect", tag, "--format", "{{.Size}}").stdout)
    print(f"image {tag}: {size / 1e6:.0f} MB, built in {seconds:.1f} s on {base.tag}")
    try:
        yield tag
    finally:
        # Its layers stay, untagged, as the next build's cache (without --no-prune, the
        # runtime stage would be built afresh each run). Builds older than a week go: they
        # may have been this one's cache too (a reused layer keeps its date), so at most one
        # build a week is made afresh.
        podman.run("rmi", "--no-prune", "--force", tag, check=False)
        podman.run("image", "prune", "--force", "--filter", "until=168h", check=False)


# The first run on a machine also makes the cached base image and wheels (~1.5 min more).
@pytest.mark.timeout(900)
def test_image_serves_api_and_worker_and_stops_on_sigterm(
    podman: Podman, image: str, temporal_target: str, postgres_server: str, tmp_path: Path
) -> None:
    database = f"img_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    # One R2C_HOME for both, as `r2c up` has: the payload key ring the API and the worker
    # share; owned by the image's user, as a volume would be.
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    shutil.chown(home, IMAGE_UID, IMAGE_UID)
    port, metrics, worker_metrics = free_port(), free_port(), free_port()
    env = {
        "TEMPORAL_ADDRESS": temporal_target,
        "POSTGRES_URL": postgres_server.rsplit("/", 1)[0] + f"/{database}",
        "R2C_TASK_QUEUE": f"tq-{uuid.uuid4().hex[:8]}",
        "R2C_HOST": "127.0.0.1",  # the host's network: nothing beyond loopback
        "PORT": str(port),
        "METRICS_PORT": str(metrics),
        "R2C_WORKER_METRICS_PORT": str(worker_metrics),
        "R2C_HEALTH_CHECK_EVERY_SECONDS": "0",  # no schedule left on the shared server
    }
    common = ["--network", "host", "-v", f"{home}:/var/lib/r2c"]
    for name, value in env.items():
        common += ["-e", f"{name}={value}"]
    suffix = uuid.uuid4().hex[:8]
    api, worker = f"r2c-api-{suffix}", f"r2c-worker-{suffix}"
    began = time.monotonic()
    try:
        # The CLI from the same image: the admin key (it applies the migrations first).
        made = podman.run("run", "--rm", *common, image, "apikey", "create", "admin",
                          "--role", "admin")  # fmt: skip
        key = made.stdout.splitlines()[0].strip()
        assert key.startswith("r2c_"), made.stdout
        podman.run("run", "-d", "--name", api, *common, image)  # CMD: api
        podman.run("run", "-d", "--name", worker, *common, image, "worker")
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
            ready = wait_for_sync(
                lambda: _get(http, "/ready"),
                lambda r: r is not None and r.status_code == 200,
                within=60,
                every=0.2,
                what="the API container's /ready",
            )
            assert ready is not None and ready.json()["status"] == "ready"
            print(f"admin key made, API ready in {time.monotonic() - began:.1f} s")
            spec = demo_spec("demo", replicas=1)
            spec["runtime"]["health_check"]["interval_seconds"] = 0.5
            assert http.post("/api/v1/components", json=spec).status_code == 201
            started = http.post(
                "/api/v1/deployments",
                json={"component": "demo", "environment": "dev", "version": "v1"},
            )
            assert started.status_code == 202, started.text
            done = wait_for_sync(
                lambda: http.get(f"/api/v1/deployments/{started.json()['id']}").json(),
                lambda d: d["state"] in ("succeeded", "rolled_back", "aborted", "failed"),
                within=60,
                every=0.3,
                what="the deployment to end",
            )
            assert done["state"] == "succeeded", done
            # The demo's router and instance run in the worker's container and serve.
            served = httpx.get(done["status"]["endpoint"] + "/", timeout=5)
            assert served.headers["x-component-version"] == "v1"
            print(f"demo v1 deployed and serving at {time.monotonic() - began:.1f} s")
        # The image's HEALTHCHECK, for each kind of container.
        for container in (api, worker):
            check = podman.run("healthcheck", "run", container, check=False)
            assert check.returncode == 0, f"{container} unhealthy: {check.stdout}{check.stderr}"
        for container in (api, worker):
            began = time.monotonic()
            podman.run("stop", "--time", "30", container, timeout=60)
            took = time.monotonic() - began
            code = podman.run("inspect", container, "--format", "{{.State.ExitCode}}").stdout
            print(f"{container}: stopped by SIGTERM in {took:.1f} s, exit code {code.strip()}")
            assert code.strip() == "0", podman.run("logs", container, check=False).stderr[-3000:]
            assert took < STOP_WITHIN
    except BaseException:
        for container in (api, worker):
            logs = podman.run("logs", container, check=False)
            print(f"----- {container} -----\n{logs.stdout[-5000:]}{logs.stderr[-5000:]}")
        raise
    finally:
        podman.run("rm", "--force", "--time", "0", api, worker, check=False)


def _get(http: httpx.Client, path: str) -> httpx.Response | None:
    try:
        return http.get(path)
    except httpx.HTTPError:
        return None
