"""`r2c logs` on an R2C_HOME with files as `r2c up` and the local provider leave them: which
logs a name shows, in what order, since when, followed across a rotation, and the errors that
say what to do."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.log_files import RotatingLog, Rotation
from cli.logs import Follower, LogsError, parse_since, sources
from cli.main import app

NOW = datetime.now(UTC)


def json_line(message: str, ago: timedelta, key: str = "time") -> str:
    # Ages from the moment the file is written, not from the module's import: a long suite
    # runs this test many minutes after collecting it, and "1 minute ago" must stay recent.
    return json.dumps({key: (datetime.now(UTC) - ago).isoformat(), "message": message})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """api with one rotated file, a worker with an ECS line, and target demo/dev with its
    router (JSON) and one instance (plain text)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api.log.2").write_text(json_line("api oldest", timedelta(hours=5)) + "\n")
    (logs / "api.log.1").write_text(json_line("api older", timedelta(hours=3)) + "\n")
    (logs / "api.log").write_text(
        json_line("api started", timedelta(minutes=30))
        + "\nTraceback (most recent call last):\n"
        + json_line("api recent", timedelta(minutes=1))
        + "\n"
    )
    (logs / "worker.log").write_text(json_line("worker ecs", timedelta(0), "@timestamp") + "\n")
    target = tmp_path / "infra" / "demo" / "dev" / "logs"
    target.mkdir(parents=True)
    (target / "router.log").write_text(
        json_line("router up", timedelta(minutes=20))
        + "\n"
        + json_line("router proxied", timedelta(minutes=5))
        + "\n"
    )
    at = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")
    (target / "blue-1.log").write_text(f"{at} instance serving\nno time on this one\n")
    return tmp_path


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def r2c(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    monkeypatch.setenv("R2C_HOME", str(home))
    runner = CliRunner()
    # The command sets up logging on the runner's stream: put the test's logging back after.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["logs", *args])
        return result.exit_code, result.stdout, result.stderr

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


def test_no_name_lists_what_has_logs(r2c: Run) -> None:
    code, out, _ = r2c()
    assert code == 0
    assert out.split() == ["api", "worker", "demo/dev"]


def test_a_process_shows_its_rotated_files_oldest_first(r2c: Run) -> None:
    code, out, _ = r2c("api")
    assert code == 0
    messages = [json.loads(x)["message"] if x.startswith("{") else x for x in out.splitlines()]
    assert messages == [
        "api oldest",
        "api older",
        "api started",
        "Traceback (most recent call last):",
        "api recent",
    ]
    assert r2c("api", "-n", "2")[1].splitlines()[0] == "Traceback (most recent call last):"


def test_since_keeps_recent_lines_and_a_line_without_time_goes_with_the_line_before(
    r2c: Run,
) -> None:
    code, out, _ = r2c("api", "--since", "1h")
    assert code == 0
    assert len(out.splitlines()) == 3 and "Traceback" in out and "api older" not in out
    assert "api recent" in r2c("api", "--since", "2m")[1]
    assert "Traceback" not in r2c("api", "--since", "2m")[1]
    iso = (NOW - timedelta(hours=4)).isoformat()
    assert "api older" in r2c("api", "--since", iso)[1]
    assert "api oldest" not in r2c("api", "--since", iso)[1]
    # ECS lines are timed by their @timestamp.
    assert "worker ecs" in r2c("worker", "--since", "1m")[1]


def test_a_target_shows_its_router_and_instances_prefixed_in_time_order(r2c: Run) -> None:
    code, out, _ = r2c("demo/dev")
    assert code == 0
    lines = out.splitlines()
    assert [line.split(" | ")[0].strip() for line in lines] == [
        "router",
        "blue-1",
        "blue-1",
        "router",
    ]
    assert "instance serving" in lines[1] and lines[2].endswith("no time on this one")
    assert "router proxied" in lines[3]
    assert r2c("demo/dev", "--since", "7m")[1].count("\n") == 1


def test_errors_say_what_is_wrong_and_where_it_looked(r2c: Run, home: Path) -> None:
    code, _, err = r2c("mystery")
    assert code == 2 and "no process or target 'mystery'" in err and "api, worker" in err
    code, _, err = r2c("temporal")
    assert code == 2 and f"no logs for temporal yet (looked in {home.resolve()}/logs" in err
    code, _, err = r2c("demo/staging")
    assert code == 2 and "no logs for demo/staging yet" in err
    for bad in ("../etc", "demo/..", "Demo/dev", "demo/dev/x", "demo/"):
        code, _, err = r2c(bad)
        assert code == 2 and "is not <component>/<environment>" in err, bad
    code, _, err = r2c("api", "--since", "yesterday")
    assert code == 2 and "use e.g. 30s, 10m, 1h" in err
    code, _, err = r2c("api", "--since", "99999d")
    assert code == 2 and "more than" in err


def test_a_target_folder_that_leads_outside_r2c_home_is_refused(
    home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "logs").mkdir()
    (outside / "logs" / "router.log").write_text("not yours\n")
    os.symlink(outside, home / "infra" / "demo" / "evil")
    with pytest.raises(LogsError, match="leads outside"):
        sources(home, "demo/evil")


def test_parse_since() -> None:
    assert parse_since("90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_since("2d", NOW) == NOW - timedelta(days=2)
    assert parse_since("2026-01-31T12:00:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)


def test_follow_reads_on_across_a_rotation_and_picks_up_a_new_instance(home: Path) -> None:
    path = home / "logs" / "api.log"
    writer = RotatingLog(path, Rotation(max_bytes=300, backups=1))
    follower = Follower(sources(home, "api"))
    got: list[str] = []
    lines = follower.lines(stop=lambda: len(got) >= 12, poll_seconds=0.01)
    for i in range(12):  # 50 bytes a line: rotated after every sixth
        writer.write(f"line {i:02d}".ljust(49).encode() + b"\n")
        got.append(next(lines)[1].strip())
    writer.close()
    lines.close()
    assert got == [f"line {i:02d}" for i in range(12)]
    assert path.with_name("api.log.1").exists()

    target = home / "infra" / "demo" / "dev" / "logs"
    follower = Follower(sources(home, "demo/dev"), target)
    seen: list[tuple[str, str]] = []
    stream = follower.lines(stop=lambda: len(seen) >= 2, poll_seconds=0.01)
    (target / "green-1.log").write_text("green is up\n")
    with (target / "router.log").open("a") as f:
        f.write("router sees green\n")
    seen = [next(stream), next(stream)]
    stream.close()
    assert sorted(seen) == [("green-1", "green is up"), ("router", "router sees green")]
