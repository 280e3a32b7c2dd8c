"""`r2c apply`'s checks before anything is sent: every document against the API's models,
the order (components first), and secrets only as references resolved from this shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.apply import check_documents
from cli.demo import demo_spec
from cli.strategy import UsageError


def _entry(**spec: object) -> dict[str, object]:
    return {"kind": "ConfigurationEntry", "spec": {"key": "db.password", **spec}}


def test_components_first_then_policies_entries_and_schedules() -> None:
    items = check_documents([
        {"kind": "Schedule", "spec": {"id": "s1", "type": "component-health-check",
                                      "spec": {"cron": ["0 3 * * *"]}}},
        _entry(key="db.pool_size", component="aa", values={"staging": 1, "production": 2}),
        {"kind": "Policy", "environment": "production", "spec": {}},
        {"kind": "Component", "spec": demo_spec("aa", 1)},
        {"kind": "Component", "spec": demo_spec("bb", 1)},
    ])  # fmt: skip
    assert [i.label for i in items] == [
        "component/aa", "component/bb", "policy/production",
        "configuration/db.pool_size@aa/staging", "configuration/db.pool_size@aa/production",
        "schedule/s1",
    ]  # fmt: skip


def test_secrets_are_references_resolved_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_PASSWORD_FOR_TEST", "s3cret")
    (tmp_path / "token").write_text("from-a-file\n")
    items = check_documents([
        _entry(value="env:DB_PASSWORD_FOR_TEST", environment="staging", secret=True),
        _entry(key="api.token", value=f"file:{tmp_path / 'token'}", secret=True),
    ])  # fmt: skip
    assert [i.body["value"] for i in items] == ["s3cret", "from-a-file"]
    assert all(i.model is None for i in items)  # a secret is never "unchanged"

    for value, message in [
        ("hunter2", "a secret's value is a reference, never the secret itself"),
        ("vault:kv/db#password", "takes their values; give env:NAME"),
        ("env:NOT_SET_ANYWHERE_R2C", "no such variable in this shell"),
        (f"file:{tmp_path / 'missing'}", "No such file"),
    ]:
        with pytest.raises(UsageError, match="nothing applied") as err:
            check_documents([_entry(value=value, secret=True)])
        assert message in str(err.value) and "hunter2" not in str(err.value)


def test_every_problem_is_told_at_once() -> None:
    with pytest.raises(UsageError) as err:
        check_documents([
            {"kind": "Component", "spec": {"name": "Bad Name"}},
            {"kind": "Gadget", "spec": {}},
            _entry(key="PATH", value=1),
            _entry(value=1, values={"staging": 2}),
            {"kind": "Policy", "spec": {}},
        ])  # fmt: skip
    text = str(err.value)
    for i in range(1, 6):
        assert f"document {i}" in text, text
