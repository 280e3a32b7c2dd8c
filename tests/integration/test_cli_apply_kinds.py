"""`r2c apply -f` of every kind in one file: a component, a policy, configuration entries per
environment and a schedule, applied components first, one line per object; applied again,
all unchanged; a file with one invalid document applies nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cli.demo import demo_spec
from tests.integration.cli_served import r2c, served_over_http
from tests.integration.system import System


def _write(tmp_path: Path, docs: list[dict[str, Any]]) -> str:
    path = tmp_path / f"apply-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


async def test_every_kind_in_one_file(make_system: Callable[..., Any], tmp_path: Path) -> None:
    system: System = await make_system(worker=False)
    schedule = f"nightly-{uuid.uuid4().hex[:8]}"
    docs = [  # in an order the API would refuse: the entries and the schedule name `shop`
        {"kind": "Schedule", "spec": {"id": schedule, "type": "component-health-check",
                                      "input": {"rounds": 1}, "spec": {"cron": ["0 3 * * *"]},
                                      "note": "nightly check"}},
        {"kind": "ConfigurationEntry", "spec": {"key": "db.pool_size", "component": "shop",
                                                "values": {"staging": 5, "production": 20}}},
        {"kind": "ConfigurationEntry", "spec": {"key": "log.level", "value": "info"}},
        {"kind": "Policy", "environment": "production",
         "spec": {"allowed_strategies": ["canary"]}},
        {"kind": "Component", "spec": demo_spec("shop", 1)},
    ]  # fmt: skip
    file = _write(tmp_path, docs)
    async with served_over_http(system):
        done = await r2c(system, "apply", "-f", file)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines() == [
            "component/shop created",
            "policy/production created",
            "configuration/db.pool_size@shop/staging created",
            "configuration/db.pool_size@shop/production created",
            "configuration/log.level@_/_ created",
            f"schedule/{schedule} created",
        ]
        entry = await system.http.get(
            "/api/v1/configuration/db.pool_size?component=shop&environment=production",
            headers=system.auth(),
        )
        assert entry.json()["value"] == 20

        again = await r2c(system, "apply", "-f", file)
        assert again.returncode == 0, again.stderr
        assert all(line.endswith(" unchanged") for line in again.stdout.splitlines()), again

        docs[1]["spec"]["values"]["staging"] = 8
        docs[0]["spec"]["note"] = "nightly check, changed"
        changed = await r2c(system, "apply", "-f", _write(tmp_path, docs))
        assert "configuration/db.pool_size@shop/staging configured" in changed.stdout
        assert f"schedule/{schedule} configured" in changed.stdout
        assert "configuration/db.pool_size@shop/production unchanged" in changed.stdout

        # One bad document (a literal secret; a schedule without a spec): nothing is applied,
        # not even the valid component before them.
        bad = [
            {"kind": "Component", "spec": demo_spec("other", 1)},
            {"kind": "ConfigurationEntry",
             "spec": {"key": "db.password", "value": "hunter2", "secret": True}},
            {"kind": "Schedule", "spec": {"id": "broken", "type": "component-health-check"}},
        ]  # fmt: skip
        refused = await r2c(system, "apply", "-f", _write(tmp_path, bad))
        assert refused.returncode == 2 and refused.stdout == ""
        assert "nothing applied" in refused.stderr and "hunter2" not in refused.stderr
        assert "document 2: a secret's value is a reference, never the secret itself" in (
            refused.stderr
        )
        assert "document 3 (Schedule): spec: Field required" in refused.stderr
        assert (await system.http.get("/api/v1/components/other", headers=system.auth())
                ).status_code == 404  # fmt: skip
        gone = await system.http.delete(f"/api/v1/schedules/{schedule}", headers=system.auth())
        assert gone.status_code == 204
