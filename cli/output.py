"""What the people-facing commands share: where the API is (cli/contexts.py), how a refusal is
told (the API's message and hint, exit 1), a usage error (exit 2), and `-o table|json|yaml`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from cli.api_client import ApiClient, ApiError, ConfigError
from cli.contexts import resolve
from cli.strategy import UsageError

T = TypeVar("T")


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOpt = Annotated[Format, typer.Option("-o", "--output", help="table, json or yaml")]
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="the API (default: R2C_URL, the context, local)")
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--key", help="an API key (default: R2C_API_KEY, the context, local admin key)"),
]
ContextOpt = Annotated[
    str | None, typer.Option("--context", help="use this context from `r2c context list`")
]


def usage(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def client(url: str | None, key: str | None, context: str | None) -> ApiClient:
    try:
        target = resolve(url, key, context)
        return ApiClient(target.url, target.key, target.oidc_context)
    except ConfigError as err:
        usage(str(err))


def run(work: Callable[[], T]) -> T:
    """The API's refusal (message and hint) is exit 1; a usage problem is exit 2."""
    try:
        return work()
    except UsageError as err:
        usage(str(err))
    except ConfigError as err:
        usage(str(err))
    except ApiError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def emit(
    data: Any,
    fmt: Format,
    columns: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]] | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> None:
    """json/yaml: the API's body as it is; table: `columns` of `rows`."""
    if fmt is Format.json:
        typer.echo(json.dumps(data, indent=2))
        return
    if fmt is Format.yaml:
        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
        return
    if columns is None or rows is None:
        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
        return
    table = Table(*(name for name, _ in columns), box=None, header_style="bold")
    for row in rows:
        table.add_row(*("" if (v := get(row)) is None else str(v) for _, get in columns))
    console = Console()
    if not console.is_terminal:  # a pipe: no wrapping at 80 columns
        console = Console(width=240)
    console.print(table)
