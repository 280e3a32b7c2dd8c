"""`r2c deploy`, `r2c watch deployment ID` and the actions on a deployment (`promote`,
`pause`, `resume`, `abort`, `approve`, `retry`, `rollback`).

Exit codes of deploy and watch: 0 succeeded, 3 rolled back, 4 aborted, 5 failed, 1 the API
refused or was away, 2 a usage error, 130 detached by Ctrl-C (the deployment goes on)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
import yaml
from rich.console import Console
from rich.live import Live

from cli.api_client import ApiClient
from cli.output import ContextOpt, Format, KeyOpt, OutputOpt, UrlOpt, client, emit, run, usage
from cli.render import FINAL, PauseClock, PlainRenderer, exit_code, live_view
from cli.strategy import (
    UsageError,
    canary_strategy,
    check_duration,
    parse_analysis,
    parse_weights,
)
from cli.watch import follow

DETACHED = 130
EXIT_HELP = (
    "Exit codes: 0 succeeded, 3 rolled back, 4 aborted, 5 failed, 1 the API refused or was"
    " away, 2 usage error, 130 detached (Ctrl-C; the deployment goes on)."
)


AbortOnInterruptOpt = Annotated[
    bool, typer.Option(help="Ctrl-C aborts the deployment instead of detaching")
]


def _strategy_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        usage(f"{path}: {err.strerror}")
    except yaml.YAMLError as err:
        usage(f"{path} is not YAML: {err}")
    if isinstance(data, dict) and isinstance(data.get("strategy"), dict):
        data = data["strategy"]
    if not isinstance(data, dict):
        usage(f"{path}: a strategy mapping (type: canary, steps: [...]) or `strategy:` of one")
    return data


def build_request(
    component: str,
    version: str,
    env: str,
    *,
    strategy_file: Path | None = None,
    canary: str | None = None,
    pause: str | None = None,
    analysis: str | None = None,
    analysis_interval: str = "10s",
    analysis_count: int = 3,
    replicas: int | None = None,
    description: str = "",
    variables: list[str] | None = None,
) -> dict[str, Any]:
    """The body of POST /api/v1/deployments; a bad flag is a UsageError."""
    if strategy_file is not None and (canary or pause or analysis):
        raise UsageError("give -f STRATEGY or --canary/--pause/--analysis, not both")
    if canary is None and (pause or analysis):
        raise UsageError("--pause and --analysis go with --canary")
    body: dict[str, Any] = {"component": component, "environment": env, "version": version}
    if strategy_file is not None:
        body["strategy"] = _strategy_file(strategy_file)
    elif canary is not None:
        spec = None
        if analysis is not None:
            interval = check_duration(analysis_interval, "--analysis-interval")
            spec = parse_analysis(analysis, interval, analysis_count)
        wait = check_duration(pause, "--pause") if pause is not None else None
        body["strategy"] = canary_strategy(parse_weights(canary), wait, spec)
    if replicas is not None:
        body["replicas"] = replicas
    if description:
        body["description"] = description
    if variables:
        pairs = [v.partition("=") for v in variables]
        if any(not name or not sep for name, sep, _ in pairs):
            raise UsageError("--var NAME=VALUE, e.g. --var LOG_LEVEL=debug")
        body["env"] = {name: value for name, _, value in pairs}
    return body


def _p(part: str) -> str:
    return quote(part, safe="")


def watch(
    api: ApiClient,
    deployment_id: str,
    *,
    steps: list[dict[str, Any]] | None = None,
    tty: bool,
    abort_on_interrupt: bool = False,
) -> int:
    """Follow the deployment to its end; its final state is the exit code."""
    last: dict[str, Any] = {}
    try:
        if tty:
            last = _watch_live(api, deployment_id, steps)
        else:
            renderer = PlainRenderer()
            for body in follow(api, deployment_id):
                last = body
                for line in renderer.feed(body):
                    print(line, flush=True)
    except KeyboardInterrupt:
        if not abort_on_interrupt:
            typer.echo(f"\ndetached; re-attach: r2c watch deployment {deployment_id}", err=True)
            return DETACHED
        typer.echo(f"\naborting {deployment_id} ...", err=True)
        api.request("POST", f"/api/v1/deployments/{_p(deployment_id)}/abort",
                    {"reason": "interrupted from r2c"})  # fmt: skip
        return watch(api, deployment_id, steps=steps, tty=tty)
    state = str(last.get("state"))
    if state not in FINAL:
        return 1
    return exit_code(state)


def _watch_live(
    api: ApiClient, deployment_id: str, steps: list[dict[str, Any]] | None
) -> dict[str, Any]:
    clock = PauseClock()
    current: dict[str, Any] = {"id": deployment_id, "state": "pending"}
    console = Console()

    def view() -> Any:
        return live_view(current, steps, clock)

    # The countdown of a timed pause moves between events: rich redraws twice a second.
    with Live(get_renderable=view, console=console, refresh_per_second=2, transient=False):
        for body in follow(api, deployment_id):
            current = body
    return current


def _steps_of(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    strategy = body.get("strategy")
    if isinstance(strategy, dict) and isinstance(strategy.get("steps"), list):
        return list(strategy["steps"])
    return None


def _is_tty() -> bool:
    return sys.stdout.isatty()


def deploy(
    component: Annotated[str, typer.Argument(help="the component")],
    version: Annotated[str, typer.Argument(help="the version to deploy")],
    env: Annotated[str, typer.Option("--env", help="the environment")],
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="a YAML strategy (type, steps, ...)")
    ] = None,
    canary: Annotated[
        str | None, typer.Option(help="a canary of these weights, e.g. 20,50,100")
    ] = None,
    pause: Annotated[
        str | None, typer.Option(help="pause this long after each weight, e.g. 30s")
    ] = None,
    analysis: Annotated[
        str | None,
        typer.Option(help="judge each weight: METRIC<THRESHOLD[,...], e.g. 'error_rate<0.05'"),
    ] = None,
    analysis_interval: Annotated[
        str, typer.Option(help="time between measurements of --analysis")
    ] = "10s",
    analysis_count: Annotated[
        int, typer.Option(min=1, max=100, help="measurements per --analysis step")
    ] = 3,
    replicas: Annotated[int | None, typer.Option(min=1, max=100)] = None,
    description: Annotated[str, typer.Option(help="why, in words")] = "",
    var: Annotated[
        list[str] | None,
        typer.Option(help="NAME=VALUE: an environment override of the new version (repeat)"),
    ] = None,
    watch_: Annotated[
        bool | None,
        typer.Option("--watch/--no-watch", help="follow it to the end (default on a terminal)"),
    ] = None,
    abort_on_interrupt: AbortOnInterruptOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Start a deployment and, on a terminal, watch it live (steps, weights, measurements,
    pauses, approvals). Not on a terminal or with --no-watch: print its id; with --watch,
    plain lines, one per change.

    Exit codes: 0 succeeded, 3 rolled back, 4 aborted, 5 failed, 1 the API refused or was
    away, 2 usage error, 130 detached (Ctrl-C; the deployment goes on)."""
    body = run(
        lambda: build_request(
            component,
            version,
            env,
            strategy_file=file,
            canary=canary,
            pause=pause,
            analysis=analysis,
            analysis_interval=analysis_interval,
            analysis_count=analysis_count,
            replicas=replicas,
            description=description,
            variables=var,
        )  # fmt: skip
    )
    api = client(url, key, context)
    started = run(lambda: api.request("POST", "/api/v1/deployments", body))
    deployment_id = str(started["id"])
    tty = _is_tty()
    if not (tty if watch_ is None else watch_):
        typer.echo(deployment_id)
        return
    if not tty:
        print(f"deployment {deployment_id} started", flush=True)
    steps = _steps_of(body)
    raise typer.Exit(
        run(
            lambda: watch(
                api, deployment_id, steps=steps, tty=tty, abort_on_interrupt=abort_on_interrupt
            )
        )  # fmt: skip
    )


def watch_command(
    kind: Annotated[str, typer.Argument(help="deployment or release")],
    ident: Annotated[str, typer.Argument(metavar="ID", help="the deployment's or release's id")],
    abort_on_interrupt: AbortOnInterruptOpt = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Follow a deployment (or a release: its waves, each component's deployment with its
    state and weights) to its end: the live view on a terminal, else plain lines.

    Exit codes: 0 succeeded, 3 rolled back, 4 aborted, 5 failed, 1 the API refused or was
    away, 2 usage error, 130 detached."""
    if kind not in ("deployment", "deployments", "release", "releases"):
        usage(f"watch {kind!r}: `watch deployment ID` or `watch release ID`")
    api = client(url, key, context)
    if kind in ("release", "releases"):
        raise typer.Exit(run(lambda: _watch_release(api, ident, abort_on_interrupt)))
    raise typer.Exit(
        run(lambda: watch(api, ident, tty=_is_tty(), abort_on_interrupt=abort_on_interrupt))
    )


def _watch_release(api: ApiClient, release_id: str, abort_on_interrupt: bool) -> int:
    from cli.release_watch import watch_release

    tty = _is_tty()
    try:
        return watch_release(api, release_id, tty=tty)
    except KeyboardInterrupt:
        if not abort_on_interrupt:
            typer.echo(f"\ndetached; re-attach: r2c watch release {release_id}", err=True)
            return DETACHED
    typer.echo(f"\naborting {release_id} ...", err=True)
    api.request(
        "POST", f"/api/v1/releases/{_p(release_id)}/abort", {"reason": "interrupted from r2c"}
    )
    return watch_release(api, release_id, tty=tty)


# ----------------------------------------------------------------------------- actions


def _act(action: str, ident: str, payload: dict[str, Any] | None, output: Format,
         url: str | None, key: str | None, context: str | None) -> None:  # fmt: skip
    api = client(url, key, context)
    body = run(lambda: api.request("POST", f"/api/v1/deployments/{_p(ident)}/{action}", payload))
    if output is not Format.table:
        emit(body, output)
        return
    if action in ("retry",) or (action == "rollback" and body.get("id") != ident):
        typer.echo(f"{action}: started deployment {body['id']} ({body.get('version')}); "
                   f"watch it: r2c watch deployment {body['id']}")  # fmt: skip
        return
    state = body.get("state")
    phase = body.get("phase") or (body.get("status") or {}).get("phase")
    typer.echo(f"{action}: deployment {ident} is {state}" + (f" ({phase})" if phase else ""))


Ident = Annotated[str, typer.Argument(metavar="ID", help="the deployment's id")]
Reason = Annotated[str, typer.Option(help="why, recorded with the action")]


def promote(
    ident: Ident,
    full: Annotated[bool, typer.Option(help="skip every remaining step")] = False,
    reason: Reason = "",
    output: OutputOpt = Format.table,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Go past the current pause or gate (--full: past every remaining step)."""
    _act("promote", ident, {"full": full, "reason": reason}, output, url, key, context)


def _simple(action: str, doc: str) -> Any:
    def command(
        ident: Ident,
        reason: Reason = "",
        output: OutputOpt = Format.table,
        url: UrlOpt = None,
        key: KeyOpt = None,
        context: ContextOpt = None,
    ) -> None:
        _act(action, ident, {"reason": reason}, output, url, key, context)

    command.__doc__ = doc
    command.__name__ = action
    return command


def retry(
    ident: Ident,
    output: OutputOpt = Format.table,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Start a failed, aborted or rolled-back deployment again, as a new deployment."""
    _act("retry", ident, None, output, url, key, context)


def rollback(
    ident: Ident,
    revision: Annotated[
        int | None, typer.Option(min=1, help="ended: go back to this revision (r2c history)")
    ] = None,
    output: OutputOpt = Format.table,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Running: abort it, with compensation. Ended: redeploy the previous revision (or
    --revision) at once, as a new deployment."""
    payload = {"revision": revision} if revision is not None else None
    _act("rollback", ident, payload, output, url, key, context)


def register(app: typer.Typer) -> None:
    app.command(epilog=EXIT_HELP)(deploy)
    app.command("watch", epilog=EXIT_HELP)(watch_command)
    app.command()(promote)
    for action, doc in (
        ("pause", "Pause a running deployment where it is."),
        ("resume", "Resume a paused deployment."),
        ("abort", "Abort a running deployment: traffic goes back to the stable version."),
        ("approve", "Approve the approval gate a deployment waits at (as yourself)."),
    ):
        app.command(action)(_simple(action, doc))
    app.command()(retry)
    app.command()(rollback)
