"""`r2c schedule ...`: schedules through the API (cli/api_client.py says where and with which
key). Exit codes: 0 done, 1 the API refused or was away, 2 a usage error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.api_client import ApiClient, ApiError, ConfigError

app = typer.Typer(
    help="Schedules: start a workflow type at set times (through the API).",
    no_args_is_help=True,
)
API = "/api/v1/schedules"
OVERLAPS = "skip, buffer_one, buffer_all, cancel_other, terminate_other, allow_all"


def _call(work: Callable[[ApiClient], None]) -> None:
    try:
        client = ApiClient()
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    try:
        work(client)
    except ApiError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _input(text: str | None, file: Path | None) -> dict[str, Any]:
    if text is not None and file is not None:
        raise _usage("give --input or --input-file, not both")
    raw = file.read_text() if file is not None else text
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise _usage(f"the input is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise _usage("the input is a JSON object, e.g. '{\"rounds\": 1}'")
    return value


def _interval(text: str) -> dict[str, str]:
    every, _, offset = text.partition("+")
    return {"every": every, "offset": offset} if offset else {"every": every}


@app.command("create")
def create(
    schedule_id: Annotated[str, typer.Argument(help="lowercase letters, digits and -")],
    type_: Annotated[
        str, typer.Option("--type", help="the workflow type, e.g. component-health-check")
    ],
    every: Annotated[
        list[str] | None,
        typer.Option(help="an interval such as 30s, 1h, or 1h+15m (with an offset); repeatable"),
    ] = None,
    cron: Annotated[
        list[str] | None, typer.Option(help='a cron expression, e.g. "0 2 * * 1-5"; repeatable')
    ] = None,
    input_: Annotated[
        str | None, typer.Option("--input", help="the workflow's input as JSON")
    ] = None,
    input_file: Annotated[Path | None, typer.Option(help="the input from a JSON file")] = None,
    time_zone: Annotated[str | None, typer.Option(help="IANA name, e.g. Europe/Berlin")] = None,
    jitter: Annotated[str | None, typer.Option(help="random delay up to this, e.g. 30s")] = None,
    start_at: Annotated[str | None, typer.Option(help="no run before (ISO 8601 with zone)")] = None,
    end_at: Annotated[str | None, typer.Option(help="no run after (ISO 8601 with zone)")] = None,
    overlap: Annotated[str, typer.Option(help=OVERLAPS)] = "skip",
    catchup_window: Annotated[
        str | None, typer.Option(help="how late a missed run may still start, e.g. 10m")
    ] = None,
    pause_on_failure: Annotated[bool, typer.Option(help="pause when a run fails")] = False,
    paused: Annotated[bool, typer.Option(help="create it paused")] = False,
    note: Annotated[str, typer.Option(help="a note shown with the schedule")] = "",
) -> None:
    """Create a schedule (POST /api/v1/schedules)."""
    if not every and not cron:
        raise _usage("give at least one --every or --cron")
    spec: dict[str, Any] = {
        "intervals": [_interval(e) for e in every or []],
        "cron": list(cron or []),
    }
    for name, value in (
        ("time_zone", time_zone),
        ("jitter", jitter),
        ("start_at", start_at),
        ("end_at", end_at),
    ):
        if value is not None:
            spec[name] = value
    body: dict[str, Any] = {
        "id": schedule_id,
        "type": type_,
        "input": _input(input_, input_file),
        "spec": spec,
        "overlap": overlap,
        "pause_on_failure": pause_on_failure,
        "paused": paused,
        "note": note,
    }
    if catchup_window is not None:
        body["catchup_window"] = catchup_window

    def work(client: ApiClient) -> None:
        made = client.request("POST", API, body)
        typer.echo(f"created schedule {made['id']}; next run {_first(made['next_runs'])}")

    _call(work)


@app.command("list")
def list_(json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List schedules: type, when, state, next run, counts."""

    def work(client: ApiClient) -> None:
        page = client.request("GET", API)
        if json_output:
            typer.echo(json.dumps(page, indent=2))
            return
        rows = [("ID", "TYPE", "WHEN", "STATE", "NEXT RUN", "RUNS", "SKIPPED")]
        for s in page["items"]:
            rows.append(
                (
                    s["id"],
                    s["type"],
                    _when(s["spec"]),
                    "paused" if s["paused"] else "active",
                    _first(s["next_runs"]),
                    str(s["counts"]["actions"]),
                    str(s["counts"]["skipped_overlap"]),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())

    _call(work)


@app.command("describe")
def describe(
    schedule_id: str,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a schedule: spec, state, next run times, last runs and their outcomes."""

    def work(client: ApiClient) -> None:
        s = client.request("GET", f"{API}/{schedule_id}")
        typer.echo(json.dumps(s, indent=2) if json_output else render(s))

    _call(work)


@app.command("pause")
def pause(
    schedule_id: str, note: Annotated[str, typer.Option(help="why it is paused")] = ""
) -> None:
    """Pause a schedule: no runs start until it is unpaused."""
    _call(lambda c: _state(c.request("POST", f"{API}/{schedule_id}/pause", {"note": note})))


@app.command("unpause")
def unpause(schedule_id: str, note: Annotated[str, typer.Option(help="a note")] = "") -> None:
    """Unpause a schedule."""
    _call(lambda c: _state(c.request("POST", f"{API}/{schedule_id}/unpause", {"note": note})))


@app.command("trigger")
def trigger(
    schedule_id: str,
    overlap: Annotated[str | None, typer.Option(help=f"instead of the schedule's: {OVERLAPS}")]
    = None,
) -> None:  # fmt: skip
    """Start a run now."""
    body = {"overlap": overlap} if overlap else {}

    def work(client: ApiClient) -> None:
        client.request("POST", f"{API}/{schedule_id}/trigger", body)
        typer.echo(f"triggered schedule {schedule_id}")

    _call(work)


@app.command("backfill")
def backfill(
    schedule_id: str,
    start_at: Annotated[str, typer.Option(help="ISO 8601 with zone")],
    end_at: Annotated[str, typer.Option(help="ISO 8601 with zone (at most 7 days later)")],
) -> None:
    """Take the runs of a period now, as if its times were passing."""

    def work(client: ApiClient) -> None:
        window = {"start_at": start_at, "end_at": end_at}
        client.request("POST", f"{API}/{schedule_id}/backfill", window)
        typer.echo(f"backfilling schedule {schedule_id} from {start_at} to {end_at}")

    _call(work)


@app.command("delete")
def delete(schedule_id: str) -> None:
    """Delete a schedule (runs it started go on)."""

    def work(client: ApiClient) -> None:
        client.request("DELETE", f"{API}/{schedule_id}")
        typer.echo(f"deleted schedule {schedule_id}")

    _call(work)


def _state(s: dict[str, Any]) -> None:
    state = "paused" if s["paused"] else "active"
    typer.echo(f"schedule {s['id']} is {state}" + (f" ({s['note']})" if s["note"] else ""))


def _first(times: list[str]) -> str:
    return times[0] if times else "-"


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


def _when(spec: dict[str, Any] | None) -> str:
    if not spec:
        return "-"
    parts = [f"cron {c}" for c in spec.get("cron", [])]
    for i in spec.get("intervals", []):
        offset = f"+{_seconds(i['offset'])}" if i.get("offset") else ""
        parts.append(f"every {_seconds(i['every'])}{offset}")
    for c in spec.get("calendars", []):
        fields = ("second", "minute", "hour", "day_of_month", "month", "day_of_week")
        parts.append("calendar " + " ".join(f"{f}={c[f]}" for f in fields))
    when = "; ".join(parts)
    return f"{when} ({spec['time_zone']})" if spec.get("time_zone") else when


def render(s: dict[str, Any]) -> str:
    """A schedule as `r2c schedule describe` prints it."""
    state = "paused" if s["paused"] else "active"
    counts = s["counts"]
    catchup = _seconds(s["catchup_window"]) if s["catchup_window"] else "default"
    lines = [
        f"schedule {s['id']}: {s['type']} {json.dumps(s['input'])}",
        f"  when:       {_when(s['spec'])}",
        f"  state:      {state}" + (f" - note: {s['note']}" if s["note"] else ""),
        f"  overlap:    {s['overlap']} (catch-up window {catchup}, "
        f"pause on failure: {'yes' if s['pause_on_failure'] else 'no'})",
        f"  created:    by {s['created_by']} at {s['created_at']}",
        f"  counts:     {counts['actions']} runs, {counts['skipped_overlap']} skipped by overlap, "
        f"{counts['missed_catchup_window']} missed",
        "  next runs:  " + ("\n              ".join(s["next_runs"]) or "-"),
        "  last runs:" + ("" if s["last_runs"] else "  -"),
    ]
    for run in s["last_runs"]:
        outcome = f"  {run['outcome']}" if run.get("outcome") else ""
        lines.append(
            f"    {run['scheduled_at']}  {run['status']:<10} {run['workflow_id']}{outcome}"
        )
    if s["running"]:
        lines.append("  running:    " + ", ".join(s["running"]))
    lines.append(f"  temporal ui: {s['temporal_ui']}")
    return "\n".join(lines)
