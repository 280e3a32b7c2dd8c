"""`r2c login`, `r2c context`, `r2c get`, `r2c describe`, `r2c history` and `r2c apply`:
reading and declaring through the API. Exit codes: 0 done, 1 the API refused or was away,
2 a usage error."""

from __future__ import annotations

import os
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import typer

from cli.api_client import ApiClient, ApiError
from cli.contexts import list_contexts, save_context, use_context
from cli.judgement import heading, judgement_lines, newest_judgements
from cli.oidc_login import DEFAULT_SCOPE
from cli.output import ContextOpt, Format, KeyOpt, OutputOpt, UrlOpt, client, emit, run, usage
from cli.render import version_weights, weights_text

context_app = typer.Typer(help="Named contexts: an API and its key.", no_args_is_help=True)


def _p(part: str) -> str:
    return quote(part, safe="")


# ----------------------------------------------------------------------------- contexts


def login(
    url: Annotated[str, typer.Option("--url", help="the API, e.g. https://r2c.example.com")],
    key: Annotated[
        str | None, typer.Option("--key", help="an API key (asked for, hidden, when absent)")
    ] = None,
    context: Annotated[str, typer.Option("--context", help="the context's name")] = "default",
    oidc: Annotated[
        bool, typer.Option("--oidc", help="sign in as a person at the OIDC issuer (browser)")
    ] = False,
    issuer: Annotated[
        str | None,
        typer.Option(help="--oidc: the API's issuer (default: R2C_OIDC_ISSUER)"),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            help="--oidc: the client id at the issuer (default: R2C_OIDC_CLIENT_ID, else"
            " R2C_UI_OIDC_CLIENT_ID, else R2C_OIDC_AUDIENCE: the dashboard's)"
        ),
    ] = None,
    scope: Annotated[str, typer.Option(help="--oidc: the scopes asked for")] = DEFAULT_SCOPE,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="--oidc: open the browser")
    ] = True,
    timeout: Annotated[
        int, typer.Option(min=10, max=1800, help="--oidc: seconds to wait for the sign-in")
    ] = 300,
) -> None:
    """Check the key against the API, then store it as a context (and make it current) in
    $XDG_CONFIG_HOME/r2c/config.toml (mode 0600). The key is never printed. With --oidc,
    sign in at the issuer in the browser instead (authorization code with PKCE) and store the
    tokens; an expired one is refreshed when the issuer gave a refresh token."""
    if oidc:
        if key is not None:
            usage("give --key or --oidc, not both")
        _login_oidc(url, context, issuer, client_id, scope, browser, timeout)
        return
    if key is None:
        key = os.environ.get("R2C_API_KEY") or typer.prompt("API key", hide_input=True)
    key = key.strip()
    if not key:
        usage("an empty key")

    def work() -> None:
        api = ApiClient(url, key)
        api.request("GET", "/api/v1/components")
        path = save_context(context, api.url, key)
        typer.echo(f"logged in to {api.url} as context {context!r} (saved in {path})")

    run(work)


def _login_oidc(
    url: str,
    context: str,
    issuer: str | None,
    client_id: str | None,
    scope: str,
    browser: bool,
    timeout: int,
) -> None:
    from cli.oidc_login import SignInError, sign_in

    issuer = (issuer or os.environ.get("R2C_OIDC_ISSUER", "")).strip()
    client_id = (
        client_id
        or os.environ.get("R2C_OIDC_CLIENT_ID")
        or os.environ.get("R2C_UI_OIDC_CLIENT_ID")
        or os.environ.get("R2C_OIDC_AUDIENCE")
        or ""
    ).strip()
    if not issuer:
        usage("--oidc needs the API's issuer: --issuer URL (its R2C_OIDC_ISSUER)")
    if not client_id:
        usage("--oidc needs a client id at the issuer: --client-id ID")

    def work() -> None:
        try:
            tokens, signed_in = sign_in(
                issuer, client_id, scope=scope, timeout=timeout, open_browser=browser,
                say=lambda text: typer.echo(text, err=True),
            )  # fmt: skip
        except SignInError as err:
            raise ApiError(
                str(err), hint="check --issuer and --client-id, then try again"
            ) from None
        api = ApiClient(url, tokens.access_token)
        api.request("GET", "/api/v1/components")  # the API accepts the token (audience, role)
        path = save_context(context, api.url, tokens.access_token, oidc=signed_in)
        renew = "refreshed when it expires" if tokens.refresh_token else "not renewable"
        typer.echo(f"signed in to {api.url} as context {context!r} (saved in {path}; {renew})")

    run(work)


@context_app.command("list")
def context_list(output: OutputOpt = Format.table) -> None:
    """The contexts (never their keys); `*` marks the current one."""
    current, contexts = run(list_contexts)
    rows = [{"current": "*" if c.name == current else "", "name": c.name, "url": c.url,
             "auth": "oidc" if c.oidc else "key"} for c in contexts]  # fmt: skip
    columns = [("", lambda r: r["current"]), ("NAME", lambda r: r["name"]),
               ("URL", lambda r: r["url"]), ("AUTH", lambda r: r["auth"])]  # fmt: skip
    shown = [{k: r[k] for k in ("name", "url", "auth")} for r in rows]
    emit({"current": current, "contexts": shown}, output, columns, rows)


@context_app.command("use")
def context_use(name: Annotated[str, typer.Argument(help="a context's name")]) -> None:
    """Make a context the current one."""
    run(lambda: use_context(name))
    typer.echo(f"using context {name!r}")


# ----------------------------------------------------------------------------- reads


class Kind(StrEnum):
    components = "components"
    deployments = "deployments"
    releases = "releases"
    pipelines = "pipelines"


def _health(row: dict[str, Any]) -> Any:
    return (row.get("health") or {}).get("state")


def _when(row: dict[str, Any]) -> Any:
    return str(row.get("created_at", ""))[:19].replace("T", " ")


_COLUMNS: dict[Kind, list[tuple[str, Any]]] = {
    Kind.components: [
        ("NAME", lambda r: r["name"]),
        ("OWNER", lambda r: r.get("owner")),
        ("REVISION", lambda r: r.get("revision")),
        ("HEALTH", _health),
        ("DESCRIPTION", lambda r: r.get("description")),
    ],
    Kind.deployments: [
        ("ID", lambda r: r["id"]),
        ("COMPONENT", lambda r: r["component"]),
        ("ENV", lambda r: r["environment"]),
        ("VERSION", lambda r: r["version"]),
        ("STRATEGY", lambda r: r["strategy"]),
        ("STATE", lambda r: r["state"]),
        ("CREATED", _when),
        ("BY", lambda r: r.get("initiator")),
    ],
    Kind.releases: [
        ("ID", lambda r: r["id"]),
        ("ENV", lambda r: r["environment"]),
        ("COMPONENTS", lambda r: " ".join(f"{c}={v}" for c, v in r["components"].items())),
        ("STATE", lambda r: r["state"]),
        ("CREATED", _when),
    ],
    Kind.pipelines: [
        ("NAME", lambda r: r["name"]),
        (
            "ENVIRONMENTS",
            lambda r: " -> ".join(str(e.get("environment")) for e in r["environments"]),
        ),
        ("RUNS", lambda r: len(r.get("runs") or [])),
        ("STOPPED", lambda r: "yes" if r.get("stop") else ""),
    ],
}


def get(
    kind: Annotated[Kind, typer.Argument(help="components, deployments, releases or pipelines")],
    component: Annotated[str | None, typer.Option(help="deployments: of this component")] = None,
    env: Annotated[str | None, typer.Option(help="deployments: in this environment")] = None,
    state: Annotated[str | None, typer.Option(help="deployments: in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="deployments: at most")] = 50,
    output: OutputOpt = Format.table,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """List components, deployments (newest first), releases or pipelines."""
    api = client(url, key, context)
    path = f"/api/v1/{kind.value}"
    if kind is Kind.deployments:
        query = {"component": component, "environment": env, "status": state, "limit": limit}
        path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
    body = run(lambda: api.request("GET", path))
    rows = body if isinstance(body, list) else body.get("items", [])
    emit(body, output, _COLUMNS[kind], rows)


def describe(
    kind: Annotated[str, typer.Argument(help="deployment or release")],
    ident: Annotated[str, typer.Argument(metavar="ID", help="the deployment's or release's id")],
    output: OutputOpt = Format.table,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """A deployment in full: its steps, weights, measurements and approvals; or a release:
    its waves and each component's deployment."""
    if kind not in ("deployment", "deployments", "release", "releases"):
        usage(f"describe {kind!r}: `describe deployment ID` or `describe release ID`")
    api = client(url, key, context)
    if kind in ("release", "releases"):
        from cli.release_watch import describe_release_text

        body = run(lambda: api.request("GET", f"/api/v1/releases/{_p(ident)}"))
        if output is not Format.table:
            emit(body, output)
        else:
            typer.echo(describe_release_text(body))
        return
    body = run(lambda: api.request("GET", f"/api/v1/deployments/{_p(ident)}"))
    if output is not Format.table:
        emit(body, output)
        return
    typer.echo(describe_text(body))


def describe_text(body: dict[str, Any]) -> str:
    st = body.get("status") or {}
    lines = [
        f"id:         {body['id']}",
        f"target:     {body['component']} in {body['environment']}",
        f"version:    {body['version']}"
        + (f" (from {st['previous_version']})" if st.get("previous_version") else ""),
        f"strategy:   {body['strategy']}",
        f"state:      {st.get('state') or body['state']}",
        f"started:    {_when(body)} by {body.get('initiator')}",
    ]
    if body.get("finished_at"):
        lines.append(f"finished:   {str(body['finished_at'])[:19].replace('T', ' ')}")
    if body.get("reason"):
        lines.append(f"reason:     {body['reason']}")
    if st.get("steps"):
        lines.append(f"step:       {st.get('step')} of {st.get('steps')} ({st.get('phase')})")
    if st.get("weights"):
        lines.append(f"weights:    {weights_text(version_weights(st))}")
    if st.get("endpoint"):
        lines.append(f"endpoint:   {st['endpoint']}")
    for analysis in st.get("analyses") or []:
        lines.append(f"analysis:   {analysis.get('phase')} - {analysis.get('reason')}")
    if st.get("measurements"):
        lines.append("measurements:")
        in_full = newest_judgements(st["measurements"])
        for i, m in enumerate(st["measurements"]):
            if i in in_full:  # a judge metric's newest judgement: its table (cli/judgement.py)
                lines += [heading(m), *judgement_lines(m)]
                continue
            value = "-" if m.get("value") is None else f"{m['value']:g}"
            lines.append(
                f"  {m['metric']}[{m['index']}] {value} {m['phase']}: {m.get('message', '')}"
            )
    if st.get("approvals"):
        lines.append("approvals:")
        lines += [f"  step {a['step']} by {a['by']} at {a['at']}" for a in st["approvals"]]
    if st.get("notices"):
        lines.append("notices:")
        lines += [f"  {n}" for n in st["notices"]]
    links = body.get("links") or {}
    if links.get("temporal_ui"):
        lines.append(f"temporal:   {links['temporal_ui']}")
    return "\n".join(lines)


def history(
    component: Annotated[str, typer.Argument(help="the component")],
    env: Annotated[str, typer.Option("--env", help="the environment")],
    output: OutputOpt = Format.table,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """The revisions of a component in an environment: what ran after each successful
    deployment, newest first (a rollback goes back to one of them)."""
    api = client(url, key, context)
    query = urlencode({"component": component, "environment": env})
    body = run(lambda: api.request("GET", f"/api/v1/deployments/revisions?{query}"))
    columns = [
        ("REVISION", lambda r: r["revision"]),
        ("VERSION", lambda r: r["version"]),
        ("REPLICAS", lambda r: r["replicas"]),
        ("CONFIG", lambda r: r.get("config_revision")),
        ("DEPLOYMENT", lambda r: r["deployment_id"]),
        ("CREATED", _when),
    ]
    emit(body, output, columns, body)


# ----------------------------------------------------------------------------- apply


def apply(
    file: Annotated[Path, typer.Option("-f", "--file", help="a YAML file ('-': stdin)")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would change, change nothing")
    ] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Create or update what a YAML file declares (several documents, `---` between them):
    `Component`, `Policy`, `ConfigurationEntry` and `Schedule` (docs/cli.md). Every document
    is checked first: one invalid and nothing is applied. Components go first; one line per
    object: created, configured or unchanged. Stops at the first refusal with the API's
    message and hint."""
    from cli.apply import apply_item, check_documents, read_documents

    items = run(lambda: check_documents(read_documents(file)))
    api = client(url, key, context)
    for item in items:
        typer.echo(run(partial(apply_item, api, item, dry_run)))


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.add_typer(context_app, name="context")
    app.command()(get)
    app.command()(describe)
    app.command()(history)
    app.command()(apply)
