"""`r2c up`: the whole system in one foreground command, supervised.

Starts the embedded Temporal server (unless `TEMPORAL_ADDRESS` names one), the embedded
OpenBao (unless `VAULT_URL` names a Vault), a worker and the API (their logs on the console
and in `R2C_HOME/logs/<process>.log`, rotated: `r2c logs`); waits until all are ready
(the worker makes the default health-check schedule first: core/default_schedules.py);
prints where everything is (https with `--tls`: a local CA and server certificate in
R2C_HOME/tls, cli/tls.py); restarts a worker or API that dies; stops everything (and
everything only) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import IO, Any

import httpx

from cli.bootstrap import ensure_admin_key
from cli.log_files import Rotation
from cli.openbao import EmbeddedVault, OpenBaoStartError, cluster_port, embedded_vault
from cli.processes import Child, environ_with, port_in_use
from cli.prometheus import local_prometheus
from cli.temporal_server import dev_server, wait_until_serving
from cli.tls import LocalTls, ensure_local_tls
from core.db.migrate import upgrade
from core.default_schedules import HEALTH_CHECK_SCHEDULE_ID
from core.settings import Settings, SettingsError
from core.temporal import mtls_hint
from core.tls import check_server_files, require_secure_transport, temporal_tls

log = logging.getLogger("r2c.up")

READY_TIMEOUT = 60.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # a child that ran this long starts its restart backoff afresh


_SERVER_TITLES = {
    "temporal": "the Temporal server",
    "openbao": "OpenBao",
    "prometheus": "Prometheus",
}


_TEMPORAL_TLS_VARIABLES = (
    "TEMPORAL_TLS_CA",
    "TEMPORAL_TLS_CERT",
    "TEMPORAL_TLS_KEY",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_API_KEY",
)


class _Stopped(Exception):
    """A stop was requested before start-up completed."""


class StartupError(Exception):
    """`up` cannot start; the message says why and what to do."""


def _say(message: str) -> None:
    print(message, flush=True)


def _lock_home(home: Path) -> IO[str]:
    lock = open(home / "up.lock", "a+")  # noqa: SIM115 - held for the life of `up`
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        other = lock.read().strip() or "?"
        raise StartupError(
            f"another `r2c up` (pid {other}) is running on R2C_HOME={home}; "
            "stop it first or set R2C_HOME to another folder"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _check_ports(settings: Settings, embedded: bool) -> None:
    wanted = [("PORT", settings.port), ("METRICS_PORT", settings.metrics_port)]
    if settings.vault_url is None:
        wanted += [
            ("R2C_VAULT_PORT", settings.vault_port),
            ("R2C_VAULT_PORT+1 (OpenBao's cluster port)", cluster_port(settings)),
        ]
    if settings.worker_metrics_port:
        wanted.append(("R2C_WORKER_METRICS_PORT", settings.worker_metrics_port))
    if settings.with_prometheus:
        wanted.append(("R2C_PROMETHEUS_PORT", settings.prometheus_port))
    if embedded:
        wanted += [
            ("R2C_TEMPORAL_PORT", settings.temporal_port),
            ("R2C_TEMPORAL_UI_PORT", settings.temporal_ui_port),
        ]
    busy = [f"{name}={port}" for name, port in wanted if port_in_use(settings.host, port)]
    if busy:
        raise StartupError(
            f"port(s) already in use: {', '.join(busy)}; free them or set those variables "
            "to other ports"
        )


class Supervisor:
    """Owns the children; `run` returns the exit code of `up`."""

    def __init__(self, settings: Settings, *, tls: bool = False) -> None:
        self.settings = settings
        self.tls = tls
        self.local_tls: LocalTls | None = None
        self.home = settings.home.resolve()
        self.temporal: Child | None = None
        self.vault: EmbeddedVault | None = None
        self.prometheus: Child | None = None
        self.services: list[Child] = []
        self.stop = asyncio.Event()

    def _service(self, name: str) -> Child:
        vault: dict[str, str] = {}
        if self.vault is not None:
            # The embedded Vault's root token; an AppRole from the environment is for
            # another Vault, so it is blanked rather than tried here.
            vault = {
                "VAULT_URL": self.vault.url,
                "VAULT_TOKEN": self.vault.token,
                "VAULT_ROLE_ID": "",
                "VAULT_SECRET_ID": "",
            }
        if self.prometheus is not None and self.settings.prometheus_url is None:
            vault["PROMETHEUS_URL"] = self._prometheus_url()
        tls: dict[str, str] = {}
        if self.settings.tls_cert is not None and self.settings.tls_key is not None:
            tls = {
                "R2C_TLS_CERT": str(self.settings.tls_cert),
                "R2C_TLS_KEY": str(self.settings.tls_key),
            }
        if self.settings.temporal_address is None:
            # The embedded server speaks plain gRPC on loopback: TLS settings in the
            # environment are for another Temporal, so they are blanked, not tried here.
            tls.update(TEMPORAL_TLS="false", **dict.fromkeys(_TEMPORAL_TLS_VARIABLES, ""))
        env = environ_with(
            R2C_HOME=str(self.home),
            TEMPORAL_ADDRESS=self.settings.temporal_target,
            R2C_READY_FILE=str(self.home / "run" / f"{name}.ready"),
            **vault,
            **tls,
        )
        # Its log on the console as before, and in R2C_HOME/logs for `r2c logs`.
        return Child(
            name,
            [sys.executable, "-m", "cli", name],
            env,
            log_file=self.home / "logs" / f"{name}.log",
            tee=Rotation(self.settings.log_file_max_bytes, self.settings.log_file_backups),
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        embedded = self.settings.temporal_address is None
        self.home.mkdir(parents=True, exist_ok=True)
        lock = _lock_home(self.home)
        try:
            if self.tls:
                await self._use_local_tls()
            _check_transport(self.settings)
            _check_ports(self.settings, embedded)
            await asyncio.to_thread(upgrade, self.settings)
            key_file, created = await ensure_admin_key(self.settings)
            if embedded:
                self.temporal = dev_server(self.settings, self.home)
                _say(f"starting Temporal server on 127.0.0.1:{self.settings.temporal_port} ...")
                await self.temporal.start()
            if self.settings.vault_url is None:
                self.vault = embedded_vault(self.settings, self.home)
                _say(f"starting OpenBao (Vault) on {self.vault.url} ...")
                await self._unless_stopped(self.vault.start())
            if self.settings.with_prometheus:
                self.prometheus = local_prometheus(self.settings, self.home)
                _say(f"starting Prometheus on {self._prometheus_url()} ...")
                await self.prometheus.start()
            await self._unless_stopped(self._wait_for_temporal(embedded))
            self.services = [self._service("worker"), self._service("api")]
            for child in self.services:
                await self._start(child)
            await self._unless_stopped(self._wait_ready())
            self._banner(key_file, created)
            return await self._supervise()
        except _Stopped:
            _say("stopped before start-up completed")
            return 0
        except StartupError:
            raise
        except (TimeoutError, RuntimeError, OpenBaoStartError) as err:
            raise StartupError(str(err)) from err
        finally:
            await self._shutdown()
            lock.close()

    def _on_signal(self) -> None:
        if not self.stop.is_set():
            self.stop.set()
            return
        # A second Ctrl-C: no more waiting for graceful exits.
        _say("stopping now (killing the remaining processes) ...")
        for child in [*self.services, *self._servers()]:
            child.kill()

    def _servers(self) -> list[Child]:
        """The embedded servers started so far (Temporal, OpenBao, Prometheus)."""
        servers = [self.temporal] if self.temporal else []
        servers += [self.vault.child] if self.vault else []
        return servers + ([self.prometheus] if self.prometheus else [])

    def _prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.prometheus_port}"

    async def _unless_stopped(self, step: Coroutine[Any, Any, None]) -> None:
        """Run a start-up step, abandoning it as soon as a stop is requested."""
        task = asyncio.create_task(step)
        stop = asyncio.create_task(self.stop.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            stop.cancel()
            task.result()
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise _Stopped

    async def _start(self, child: Child) -> None:
        ready = Path(child.env["R2C_READY_FILE"])
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.unlink(missing_ok=True)
        await child.start()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        api_ready = f"{self._api_url(probe=True)}/ready"
        async with httpx.AsyncClient(timeout=2, verify=self._probe_verify()) as http:
            while time.monotonic() < deadline:
                for child in self.services:
                    if not child.running:
                        raise StartupError(
                            f"the {child.name} exited with code {child.exit_code} while starting;"
                            f" its log is above and in {child.log_file}"
                        )
                worker_ready = Path(self.services[0].env["R2C_READY_FILE"]).exists()
                try:
                    api_ok = (await http.get(api_ready)).status_code == 200
                except httpx.HTTPError:
                    api_ok = False
                if worker_ready and api_ok:
                    return
                await asyncio.sleep(0.2)
        raise StartupError(f"the worker and API were not ready within {READY_TIMEOUT:.0f}s")

    async def _wait_for_temporal(self, embedded: bool) -> None:
        s = self.settings
        tls = _temporal_tls(s, embedded)
        try:
            await wait_until_serving(
                self.temporal, s.temporal_target, s.temporal_namespace, 30, **tls
            )
        except TimeoutError as err:
            if not tls.get("tls"):
                raise
            raise StartupError(f"{err}{mtls_hint(s)}") from None

    async def _use_local_tls(self) -> None:
        """`--tls`: the local CA's server certificate (made or renewed under the home's lock)
        for the API and its metrics port."""
        local, issued = await asyncio.to_thread(ensure_local_tls, self.home, self.settings.host)
        if issued:
            _say(f"issued a server certificate {local.cert} from the local CA {local.ca}")
        self.local_tls = local
        self.settings = self.settings.model_copy(
            update={"tls_cert": local.cert, "tls_key": local.key}
        )

    def _api_url(self, *, probe: bool = False, port: int | None = None) -> str:
        s = self.settings
        scheme = "https" if s.tls_cert is not None else "http"
        host = s.host
        if probe and host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"  # a wildcard bind is reached on loopback (the certificate's name)
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{port or s.port}"

    def _probe_verify(self) -> ssl.SSLContext | bool:
        """The readiness probe trusts `--tls`'s own CA. A certificate from elsewhere may not
        name the loopback address probed; the probe sends no credential and only learns that
        our own child answers, so it does not verify that one."""
        if self.local_tls is not None:
            return ssl.create_default_context(cafile=str(self.local_tls.ca))
        return self.settings.tls_cert is None

    def _banner(self, key_file: Path, created: bool) -> None:
        s = self.settings
        api = self._api_url()
        lines = [
            "",
            "readme-to-cicd orchestration is up",
            f"  API            {api}",
            f"  OpenAPI docs   {api}/docs",
            f"  Temporal UI    {s.temporal_ui}",
            f"  Temporal       {s.temporal_target} (namespace {s.temporal_namespace})",
            f"  Vault          {self._vault_line()}",
            f"  metrics        {self._api_url(port=s.metrics_port)}/metrics",
        ]
        if s.worker_metrics_port:
            lines.append(f"  worker metrics http://{s.host}:{s.worker_metrics_port}/metrics")
        if self.prometheus is not None:
            lines.append(f"  Prometheus     {self._prometheus_url()}")
        lines.append(f"  health check   {_health_check_line(s)}")
        curl = "curl"
        if self.local_tls is not None:
            ca = self.local_tls.ca
            lines.append(
                f"  TLS            TLS {s.tls_min_version}+, local CA {ca} (trust it once)"
            )
            curl = f"curl --cacert {ca}"
        elif s.tls_cert is not None:
            lines.append(f"  TLS            TLS {s.tls_min_version}+, certificate {s.tls_cert}")
        lines += [
            f"  admin API key  {key_file}" + (" (new)" if created else ""),
            f"  state          {self.home}",
            f"  logs           {self.home / 'logs'} (r2c logs [api|worker|...] [-f])",
            "",
            f'  try: {curl} -H "Authorization: Bearer $(cat {key_file})" {api}/api/v1/components',
            *self._trust_lines(),
            "  Ctrl-C stops everything.",
            "",
        ]
        _say("\n".join(lines))

    def _trust_lines(self) -> list[str]:
        if self.local_tls is None:
            return []
        return [
            f"  r2c commands: export R2C_CA_FILE={self.local_tls.ca}"
            f" R2C_API_URL={self._api_url(probe=True)}",
        ]

    def _vault_line(self) -> str:
        if self.vault is None:
            return f"{self.settings.vault_url} (VAULT_URL)"
        return (
            f"{self.vault.url} (embedded OpenBao, KV v2 at {self.vault.mount}/; data, unseal key"
            f" and root token in {self.vault.folder})"
        )

    async def _supervise(self) -> int:
        """Wait for a stop request or a child's exit; restart a dead worker or API after a
        backoff (without blocking: a Temporal crash meanwhile is still noticed)."""
        stop_task = asyncio.create_task(self.stop.wait())
        exits: dict[asyncio.Task[Any], Child] = {
            asyncio.create_task(c.wait()): c for c in self.services
        }
        restarts: dict[asyncio.Task[Any], Child] = {}
        # An embedded server that exits ends `up`: the services cannot work without it.
        servers = {asyncio.create_task(c.wait()): c for c in self._servers()}
        try:
            while True:
                pending: set[asyncio.Task[Any]] = {stop_task, *exits, *restarts, *servers}
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if stop_task in done:
                    _say("stopping ...")
                    return 0
                for task in done & servers.keys():
                    server = servers[task]
                    title = _SERVER_TITLES.get(server.name, server.name)
                    log.error("%s exited with code %s", title, task.result())
                    _say(
                        f"error: {title} exited (code {task.result()}); "
                        f"stopping everything. Its log: {server.log_file}"
                    )
                    return 1
                for task in done:
                    if task in exits:
                        child = exits.pop(task)
                        restarts[asyncio.create_task(self._restart(child, task.result()))] = child
                    elif task in restarts:
                        child = restarts.pop(task)
                        task.result()
                        exits[asyncio.create_task(child.wait())] = child
        finally:
            for task in [stop_task, *exits, *restarts, *servers]:
                task.cancel()

    async def _restart(self, child: Child, code: int) -> None:
        ran_for = time.monotonic() - child.started_at
        if ran_for > STABLE_AFTER:
            child.restarts = 0
        delay = min(MAX_BACKOFF, 0.5 * 2**child.restarts)
        child.restarts += 1
        log.warning(
            "%s exited with code %s; restarting in %.1fs (restart %d)",
            child.name,
            code,
            delay,
            child.restarts,
            extra={"child": child.name, "exit_code": code, "restart": child.restarts},
        )
        _say(f"{child.name} exited with code {code}; restarting in {delay:.1f}s")
        await asyncio.sleep(delay)
        await self._start(child)

    async def _shutdown(self) -> None:
        for child in self.services:
            await child.stop()
        for server in self._servers():
            await server.stop()


def _health_check_line(settings: Settings) -> str:
    """The default schedule the worker made before it said ready (core/default_schedules)."""
    every = settings.health_check_every_seconds
    if not every:
        return "off (health_check_every_seconds is 0)"
    return f"every {every}s (Temporal schedule {HEALTH_CHECK_SCHEDULE_ID})"


def _temporal_tls(settings: Settings, embedded: bool) -> dict[str, Any]:
    """An external Temporal is reached with the TLS settings the worker and API use; the
    embedded server is a plaintext child on loopback."""
    if embedded:
        return {}
    try:
        tls = temporal_tls(settings)
    except SettingsError as err:
        raise StartupError(str(err)) from None
    api_key = settings.temporal_api_key
    return {"tls": tls if tls is not None else api_key is not None, "api_key": api_key}


def _check_transport(settings: Settings) -> None:
    """The API's and worker's own refusals (core/tls), before anything starts."""
    try:
        for process in ("api", "worker"):
            require_secure_transport(settings, process)
        check_server_files(settings)
    except SettingsError as err:
        raise StartupError(str(err)) from None


async def run_up(settings: Settings, *, tls: bool = False) -> int:
    """`tls`: serve the API and its metrics over https with a local CA's certificate, made
    in R2C_HOME/tls on first use and renewed when it nears expiry."""
    try:
        return await Supervisor(settings, tls=tls).run()
    except StartupError as err:
        _say(f"error: {err}")
        return 1
