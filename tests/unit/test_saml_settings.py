"""SAML sign-in's settings are checked at start-up, each problem named (core/settings.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from core.settings import SettingsError, load_settings

IDP = '<EntityDescriptor entityID="https://idp.example"><IDPSSODescriptor/></EntityDescriptor>'


def saml(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    metadata = tmp_path / "idp.xml"
    metadata.write_text(IDP)
    return {
        "home": tmp_path,
        "ui_public_url": "https://deploy.example.com",
        "ui_saml_idp_metadata": str(metadata),
        "ui_saml_role_map": '{"admins": "admin"}',
        **overrides,
    }


def test_a_complete_saml_setup_loads_and_falls_back_to_the_oidc_role_map(tmp_path: Path) -> None:
    settings = load_settings(**saml(tmp_path))
    assert settings.ui_saml_groups_attribute == "groups"
    fallback = load_settings(
        **saml(tmp_path, ui_saml_role_map="", oidc_role_map='{"ops": "operator"}')
    )
    assert set(fallback.ui_saml_roles) == {"ops"}
    assert load_settings(home=tmp_path).ui_saml_idp_metadata is None  # off by default


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"ui_public_url": None}, "R2C_UI_PUBLIC_URL is required"),
        ({"ui_saml_idp_metadata": "/nowhere/idp.xml"}, "cannot read /nowhere/idp.xml"),
        ({"ui_saml_idp_metadata": "http://idp.example/md"}, "expected an https:// URL"),
        ({"ui_saml_role_map": ""}, "R2C_UI_SAML_ROLE_MAP (or R2C_OIDC_ROLE_MAP) is required"),
        ({"ui_saml_role_map": '{"a": "boss"}'}, "R2C_UI_SAML_ROLE_MAP: Value error, group 'a'"),
        ({"ui_saml_sp_key_file": "/etc/hostname"}, "go together"),
    ],
)
def test_each_problem_is_named(tmp_path: Path, overrides: dict[str, Any], says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(**saml(tmp_path, **overrides))
    assert says in str(raised.value)


def test_not_an_idp_metadata_and_no_xmlsec1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "sp.xml"
    other.write_text("<EntityDescriptor><SPSSODescriptor/></EntityDescriptor>")
    with pytest.raises(SettingsError) as raised:
        load_settings(**saml(tmp_path, ui_saml_idp_metadata=str(other)))
    assert "no IDPSSODescriptor" in str(raised.value)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SettingsError) as raised:
        load_settings(**saml(tmp_path))
    assert "xmlsec1 is not on PATH" in str(raised.value)
