"""The `r2c` command."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.audit import audit_app
from cli.deploy import register as register_deploy
from cli.entry_settings import entry_settings
from cli.resources import register as register_resources
from cli.schedules import app as schedules_app
from core.logging import setup_logging
from core.models.apikeys import Role
from core.settings import Settings, SettingsError

app = typer.Typer(
    help="readme-to-cicd orchestration: durable deployments on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
apikey_app = typer.Typer(help="Create, list, rotate and revoke API keys.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo component.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Payload encryption keys (Temporal histories); API keys are `r2c apikey`.",
    no_args_is_help=True,
)
app.add_typer(apikey_app, name="apikey")
app.add_typer(keys_app, name="keys")
app.add_typer(demo_app, name="demo")
app.add_typer(schedules_app, name="schedule")
app.add_typer(audit_app, name="audit")
# The people's commands through the API: login, context, get, describe, history, apply,
# deploy, watch and the actions on a deployment (docs/cli.md).
register_resources(app)
register_deploy(app)


def _require_secure_transport(settings: Settings, process: str) -> None:
    """Refuse plain HTTP on a public address outside development, or a certificate that
    cannot serve, with the reason and the fix (core/tls), before anything starts."""
    from core.tls import check_server_files, require_secure_transport

    try:
        require_secure_transport(settings, process)
        if process == "api":
            check_server_files(settings)
    except SettingsError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
    try:
        import uvloop

        return uvloop.run(coro) or 0
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coro) or 0


@app.command()
def up(
    with_prometheus: bool = typer.Option(
        False,
        "--with-prometheus",
        help="also start the installed Prometheus, scraping everything (R2C_WITH_PROMETHEUS)",
    ),
    tls: bool = typer.Option(
        False,
        "--tls",
        help="serve the API and metrics over https with a local CA made in R2C_HOME/tls",
    ),
) -> None:
    """Start the whole system: Temporal server and UI, worker, API. Ctrl-C stops it all."""
    from cli.up import run_up

    settings = entry_settings("up")
    if with_prometheus:
        settings = settings.model_copy(update={"with_prometheus": True})
    raise typer.Exit(_run(run_up(settings, tls=tls)))


@app.command()
def worker() -> None:
    """Run a worker alone (production runs several)."""
    from workers.main import serve

    settings = entry_settings("worker")
    _require_secure_transport(settings, "worker")
    ready = os.environ.get("R2C_READY_FILE")
    raise typer.Exit(_run(serve(settings, Path(ready) if ready else None)))


@app.command()
def api() -> None:
    """Run the API alone, on PORT, with metrics on METRICS_PORT."""
    from api.server import serve

    settings = entry_settings("api")
    _require_secure_transport(settings, "api")
    _run(serve(settings))


@app.command()
def logs(
    name: Annotated[
        str | None,
        typer.Argument(help="api, worker, temporal, openbao, prometheus or <component>/<env>"),
    ] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep showing new lines")] = False,
    since: Annotated[
        str | None, typer.Option(help="only lines this recent: 30s, 10m, 1h, 2d or ISO time")
    ] = None,
    lines: Annotated[
        int, typer.Option("-n", "--lines", help="at most this many lines", min=0, max=100_000)
    ] = 200,
) -> None:
    """Show the logs of `r2c up`'s processes or of a target's router and instances; no name
    lists what has logs."""
    from cli.logs import show_logs

    settings = entry_settings("cli")
    raise typer.Exit(show_logs(settings.home, name, follow, since, lines))


@app.command()
def load(
    url: Annotated[str, typer.Argument(help="the URL to send GET requests to")],
    rps: Annotated[float, typer.Option(help="requests per second", min=0.1)] = 50,
    duration: Annotated[float, typer.Option(help="seconds", min=0.1)] = 10,
    concurrency: Annotated[int, typer.Option(help="connections", min=1, max=1024)] = 64,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Drive traffic at a URL and summarise it by component version (X-Component-Version)."""
    from cli.load import render_table, run_load

    report = asyncio.run(run_load(url, rps, duration, concurrency))
    typer.echo(report.model_dump_json(indent=2) if json_output else render_table(report))
    raise typer.Exit(1 if report.failed else 0)


@app.command(hidden=True)
def router(
    table: Annotated[Path, typer.Option(help="the routing table file to follow")],
    port: Annotated[int, typer.Option(help="port to listen on")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    admin_port: Annotated[
        int | None,
        typer.Option(help="port of /status and /metrics, on 127.0.0.1 only; none if absent"),
    ] = None,
) -> None:
    """Run a router (started by the local provider, one per component and environment)."""
    from activities.infrastructure.local.router.main import run_router

    setup_logging("INFO", "router")
    raise typer.Exit(_run(run_router(table, host, port, admin_port)))


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="a name to recognise the key by")],
    role: Annotated[Role, typer.Option(help="viewer, operator or admin")] = Role.VIEWER,
    expires_in: Annotated[
        str | None,
        typer.Option(help="the key stops working after this long: 1s..3650d, e.g. 30d"),
    ] = None,
    component: Annotated[
        list[str] | None,
        typer.Option(help="scope the role to this component (repeat for more); default: all"),
    ] = None,
    environment: Annotated[
        list[str] | None,
        typer.Option(help="scope the role to this environment (repeat for more); default: all"),
    ] = None,
    read_everything: Annotated[
        bool,
        typer.Option(help="a scoped key may still read everything (as a viewer)"),
    ] = True,
) -> None:
    """Create a key and print it (the only time it is shown). With --component and/or
    --environment its role applies to those only (docs/apikeys.md)."""
    from cli import keys

    lifetime = keys.parse_lifetime(expires_in)
    scope = keys.parse_scope(component, environment)
    settings = entry_settings("cli")
    raise typer.Exit(
        _run(keys.create(settings, name, role, lifetime, scope, read_everything=read_everything))
    )


@apikey_app.command("rotate")
def apikey_rotate(
    key_id: Annotated[str, typer.Argument(help="the id of the key to replace")],
    grace: Annotated[str, typer.Option(help="how long the old key keeps working: 0s..7d")] = "1h",
    expires_in: Annotated[
        str | None,
        typer.Option(help="lifetime of the new key (default: the old key's lifetime)"),
    ] = None,
) -> None:
    """Replace a key by a new one (printed, the only time it is shown); the old one keeps
    working for --grace."""
    from cli import keys

    grace_seconds = keys.parse_grace(grace)
    lifetime = keys.parse_lifetime(expires_in)
    settings = entry_settings("cli")
    raise typer.Exit(_run(keys.rotate(settings, key_id, grace_seconds, lifetime)))


@apikey_app.command("list")
def apikey_list(
    all_: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
) -> None:
    """List keys (never the keys themselves)."""
    from cli import keys

    settings = entry_settings("cli")
    raise typer.Exit(_run(keys.list_keys(settings, all_)))


@apikey_app.command("revoke")
def apikey_revoke(ref: Annotated[str, typer.Argument(help="the key's id or name")]) -> None:
    """Revoke a key; it stops working at once."""
    from cli import keys

    settings = entry_settings("cli")
    raise typer.Exit(_run(keys.revoke(settings, ref)))


@keys_app.command("list")
def keys_list() -> None:
    """List payload keys: ids and creation times, never the keys; `*` marks the current one."""
    from cli import payload_keys

    settings = entry_settings("cli")
    raise typer.Exit(payload_keys.list_keys(settings))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new current payload key; older keys stay, so old histories still decrypt."""
    from cli import payload_keys

    settings = entry_settings("cli")
    raise typer.Exit(_run(payload_keys.rotate(settings)))


@demo_app.command("serve")
def demo_serve(
    port: Annotated[int, typer.Option(help="port to listen on")],
    version: Annotated[str, typer.Option(help="the version this instance reports")] = "v1",
    error_rate: Annotated[
        float | None, typer.Option(help="share of requests failed with 500 [DEMO_ERROR_RATE]")
    ] = None,
    latency_ms: Annotated[
        float | None, typer.Option(help="added latency per request [DEMO_LATENCY_MS]")
    ] = None,
    latency_jitter_ms: Annotated[
        float | None,
        typer.Option(
            help="standard deviation of a lognormal latency around --latency-ms "
            "[DEMO_LATENCY_JITTER_MS]"
        ),
    ] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    upstream_url: Annotated[
        str | None,
        typer.Option(help="call this URL's / on each request; 502 if it fails [DEMO_UPSTREAM_URL]"),
    ] = None,
    upstream_env: Annotated[
        str | None,
        typer.Option(help="the variable holding the upstream URL, e.g. API_URL (a dependency's)"),
    ] = None,
) -> None:
    """Serve the demo component."""
    import uvicorn

    from cli.demo import DemoApp, env_float, resolve_upstream

    try:
        demo = DemoApp(
            version,
            env_float("DEMO_ERROR_RATE", error_rate, 0.0),
            env_float("DEMO_LATENCY_MS", latency_ms, 0.0),
            resolve_upstream(upstream_url, upstream_env),
            env_float("DEMO_LATENCY_JITTER_MS", latency_jitter_ms, 0.0),
        )
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(demo, host=host, port=port, log_level="warning", http="httptools")


@demo_app.command("register")
def demo_register(
    name: Annotated[str, typer.Option(help="component name")] = "demo",
    replicas: Annotated[int, typer.Option(min=1, max=100)] = 2,
    api_url: Annotated[
        str | None,
        typer.Option("--api", help="API base URL [$R2C_API_URL, else http://127.0.0.1:$PORT]"),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(help="file with an admin key [$R2C_HOME/admin.key]")
    ] = None,
) -> None:
    """Register the demo component through the API (what `r2c up` runs must be up)."""
    from cli.demo import register

    settings = entry_settings("cli")
    url = api_url or os.environ.get("R2C_API_URL") or f"http://127.0.0.1:{settings.port}"
    raise typer.Exit(register(url, key_file or settings.admin_key_file, name, replicas))


def main() -> None:
    """Console entry point. Ends with `os._exit`: a process that used a Temporal client can
    abort at interpreter exit (temporalio/sdk-python#300) after doing everything right."""
    code = 0
    try:
        app()  # standalone mode: usage errors are shown and every path ends in SystemExit
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
