"""The README's OIDC settings, as exported there, are settings the system accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_oidc_exports_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.read_text().split("\n## Single sign-on (OIDC)\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no shell example in the README's OIDC section"
    exports = {}
    for line in block.group(1).splitlines():
        if line.startswith("export "):
            name, _, value = shlex.split(line[len("export ") :], comments=True)[0].partition("=")
            exports[name] = value
    assert set(exports) == {"R2C_OIDC_ISSUER", "R2C_OIDC_AUDIENCE", "R2C_OIDC_ROLE_MAP"}
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.oidc_issuer == exports["R2C_OIDC_ISSUER"]
    assert settings.oidc_role_map["platform-admins"] == "admin"
