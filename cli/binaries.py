"""Where the command-line tools that our wheels install are found."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def installed_binary(name: str, package: str, tool: str) -> str:
    """The `name` executable installed by the `package` wheel: the one beside our Python first
    (the venv's, even when the venv is not activated), else the first on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"the {tool} is not installed; `pip install {package}` (a dependency) brings it"
        )
    return found
