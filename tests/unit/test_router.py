"""The router's choices and metrics, without any process."""

from __future__ import annotations

from pathlib import Path

from activities.infrastructure.local.router.balancer import Router
from activities.infrastructure.local.router.metrics import RouterMetrics
from activities.infrastructure.local.router.request import Request
from activities.infrastructure.local.router.table import (
    Backend,
    RouteTable,
    read_table,
    write_table,
)


def _router(weights: dict[str, int], per_slot: int = 2) -> Router:
    router = Router(Path("/nonexistent"), "demo", "dev")
    backends = [
        Backend(instance_id=f"{slot}-{i}", port=20000 + n * 10 + i, version=slot, slot=slot)
        for n, slot in enumerate(weights)
        for i in range(per_slot)
    ]
    router.apply(
        RouteTable(component="demo", environment="dev", weights=weights, backends=backends)
    )
    return router


def _picks(router: Router, n: int) -> list[str]:
    picked = []
    for _ in range(n):
        state = router.pick()
        assert state is not None
        picked.append(state.backend.instance_id)
    return picked


def test_weights_give_exact_proportions_and_spread_within_a_slot() -> None:
    picks = _picks(_router({"stable": 90, "canary": 10}), 100)
    assert sum(p.startswith("canary") for p in picks) == 10
    assert picks.count("stable-0") == picks.count("stable-1") == 45


def test_unhealthy_backends_and_zero_weights_get_nothing() -> None:
    router = _router({"stable": 50, "canary": 50})
    for state in router.slots["canary"]:
        state.healthy = False
    assert set(_picks(router, 20)) == {"stable-0", "stable-1"}
    router.slots["stable"][0].healthy = False
    assert set(_picks(router, 5)) == {"stable-1"}
    router.slots["stable"][1].healthy = False
    assert router.pick() is None
    assert _router({"stable": 0, "canary": 100}).pick().backend.slot == "canary"  # type: ignore[union-attr]


def test_a_new_table_keeps_unchanged_backends_and_their_health() -> None:
    router = _router({"stable": 100})
    router.backends["stable-0"].healthy = False
    table = router.table.model_copy(update={"generation": 2, "weights": {"stable": 100}})
    router.apply(table)
    assert router.backends["stable-0"].healthy is False
    assert router.table.generation == 2


def test_table_round_trips_through_its_file(tmp_path: Path) -> None:
    table = _router({"stable": 100}).table
    write_table(tmp_path / "routes.json", table)
    assert read_table(tmp_path / "routes.json") == table
    assert [p.name for p in tmp_path.iterdir()] == ["routes.json"]  # no temp file left


def test_upstream_request_drops_hop_by_hop_headers() -> None:
    req = Request(
        b"POST",
        b"/x?y=1",
        [(b"host", b"h"), (b"connection", b"keep-alive"), (b"transfer-encoding", b"chunked")],
        b"body",
        True,
        b"10.0.0.1",
    )
    raw = req.upstream_bytes()
    assert raw.startswith(b"POST /x?y=1 HTTP/1.1\r\nhost: h\r\n")
    assert b"connection" not in raw and b"chunked" not in raw
    assert raw.endswith(b"content-length: 4\r\n\r\nbody")


def test_forwarding_headers_of_the_client_are_replaced_unless_trusted() -> None:
    req = Request(
        b"GET",
        b"/",
        [
            (b"host", b"shop.example"),
            (b"x-forwarded-for", b"1.2.3.4"),
            (b"x-forwarded-proto", b"https"),
            (b"x-real-ip", b"1.2.3.4"),
            (b"forwarded", b"for=1.2.3.4"),
        ],
        b"",
        True,
        b"10.0.0.1",
    )
    raw = req.upstream_bytes()
    assert b"1.2.3.4" not in raw and b"https" not in raw
    assert b"x-forwarded-for: 10.0.0.1\r\n" in raw
    assert b"x-forwarded-proto: http\r\n" in raw
    assert b"x-forwarded-host: shop.example\r\n" in raw
    trusted = req.upstream_bytes(trust_forwarded=True)
    assert b"x-forwarded-for: 1.2.3.4, 10.0.0.1\r\n" in trusted
    assert (
        b"x-forwarded-proto: https\r\n" in trusted and b"x-forwarded-proto: http\r\n" not in trusted
    )


def test_metrics_are_prometheus_text_by_version() -> None:
    metrics = RouterMetrics("demo", "dev")
    metrics.observe("v1", 200, 0.0007)
    metrics.observe("v1", 500, 0.03)
    metrics.observe("v2", 200, 2.0)
    text = metrics.render()
    labels = 'component="demo",environment="dev"'
    assert f'r2c_router_requests_total{{{labels},version="v1",code="500"}} 1' in text
    assert (
        f'r2c_router_request_duration_seconds_bucket{{{labels},version="v1",le="0.001"}} 1' in text
    )
    assert (
        f'r2c_router_request_duration_seconds_bucket{{{labels},version="v1",le="+Inf"}} 2' in text
    )
    assert f'r2c_router_request_duration_seconds_count{{{labels},version="v2"}} 1' in text
