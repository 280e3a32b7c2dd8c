"""The log files of `r2c up`: rotated by size between lines, and a child that writes a lot is
drained as it writes (it never blocks on a full pipe), to its file and to the console."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli.log_files import RotatingLog, Rotation, rotated
from cli.processes import Child, environ_with


def test_a_file_past_its_size_is_rotated_keeping_the_newest_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "api.log"
    log = RotatingLog(path, Rotation(max_bytes=100, backups=2))
    for i in range(10):
        log.write(f"line {i:02d} ".ljust(39, ".").encode() + b"\n")  # 40 bytes a line
    log.close()
    # Two lines per file: 100 bytes hold two 40-byte lines, not three.
    assert path.read_text().splitlines() == [f"line {i:02d} ".ljust(39, ".") for i in (8, 9)]
    assert rotated(path, 1).read_text().startswith("line 06")
    assert rotated(path, 2).read_text().startswith("line 04")
    assert not rotated(path, 3).exists()
    assert {p.stat().st_mode & 0o777 for p in path.parent.iterdir()} == {0o600}


def test_without_backups_the_file_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "worker.log"
    log = RotatingLog(path, Rotation(max_bytes=10, backups=0))
    log.write(b"12345678\n")
    log.write(b"abcdefgh\n")
    log.close()
    assert path.read_bytes() == b"abcdefgh\n"
    assert list(tmp_path.iterdir()) == [path]


async def test_a_child_that_writes_a_lot_is_drained_to_its_rotated_file_and_the_console(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # 20,000 lines of 100 bytes (2 MB), far more than a pipe holds (64 KiB), then a last
    # line without its newline: the child exits only if `up` reads as it writes.
    script = (
        "import sys\n"
        "for i in range(20000): sys.stdout.write(f'{i:08d} ' + 'x' * 90 + '\\n')\n"
        "sys.stdout.write('the end')\n"
    )
    path = tmp_path / "logs" / "api.log"
    child = Child(
        "api",
        [sys.executable, "-c", script],
        environ_with(),
        log_file=path,
        tee=Rotation(max_bytes=400 * 1024, backups=10),
    )
    await child.start()
    assert await child.wait() == 0
    # How full each file gets depends on how the pipe's reads fall; none is lost with 10
    # backups, and 2 MB over at most 400 KiB a file makes at least 5 files.
    files = [p for p in (rotated(path, i) for i in range(10, 0, -1)) if p.exists()] + [path]
    assert len(files) >= 5 and not rotated(path, 11).exists()
    lines = "".join(f.read_text() for f in files).splitlines()
    assert len(lines) == 20001
    assert [int(line[:8]) for line in lines[:-1]] == list(range(20000))
    assert lines[-1] == "the end"
    # Every file ends with a whole line, under the limit.
    assert all(f.read_bytes().endswith(b"\n") for f in files)
    assert all(f.stat().st_size <= 400 * 1024 for f in files)
    console = capfd.readouterr().out.splitlines()
    assert len(console) == 20001 and console[-1] == "the end"
