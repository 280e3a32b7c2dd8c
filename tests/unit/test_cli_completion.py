"""Shell completion of `r2c` (typer's): the bash script `r2c --show-completion bash` prints
works in a real bash, completing commands and the choices of an argument."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app


def test_the_bash_script_is_produced() -> None:
    shown = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="r2c")
    assert shown.exit_code == 0, shown.output
    assert "_r2c_completion()" in shown.output
    assert "complete -o default -F _r2c_completion r2c" in shown.output


def test_bash_completes_commands_and_choices() -> None:
    r2c = Path(sys.executable).parent / "r2c"  # the console script of the installed project
    bash = shutil.which("bash")
    assert bash is not None and r2c.exists()
    script = (
        'source <("$R2C" --show-completion bash)\n'
        'COMP_WORDS=(r2c get ""); COMP_CWORD=2; _r2c_completion r2c; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(r2c wat); COMP_CWORD=1; _r2c_completion r2c; echo "${COMPREPLY[*]}"\n'
    )
    env = {**os.environ, "R2C": str(r2c), "PATH": f"{r2c.parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [bash, "--norc", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["components deployments releases pipelines", "watch"]
