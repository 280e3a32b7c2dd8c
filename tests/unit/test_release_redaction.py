"""A release as a caller scoped to some of its components sees it: the others left out (names
too) and counted, a reason naming one of them replaced; none readable: not shown at all."""

from __future__ import annotations

from datetime import UTC, datetime

from api.services.releases import REDACTED, ReleaseLinks, ReleaseView, redact
from core.models.apikeys import Principal, Role
from core.models.releases import ComponentProgress, ReleaseState, ReleaseStatus
from core.models.scopes import Grant

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _view() -> ReleaseView:
    status = ReleaseStatus(
        release_id="rel-1",
        environment="dev",
        state=ReleaseState.ROLLED_BACK,
        reason="payments: rolled back by its analysis",
        failed_component="payments",
        graph={"web": ["payments"], "payments": [], "docs": []},
        waves=[["docs", "payments"], ["web"]],
        components={
            name: ComponentProgress(component=name, version="v2", wave=w)
            for name, w in (("docs", 0), ("payments", 0), ("web", 1))
        },
    )
    return ReleaseView(
        id="rel-1",
        environment="dev",
        components={"docs": "v2", "payments": "v2", "web": "v2"},
        state=ReleaseState.ROLLED_BACK,
        reason=status.reason,
        failed_component="payments",
        initiator="apikey:ops",
        created_at=AT,
        status=status,
        links=ReleaseLinks(self="/r", abort="/r/abort", temporal_ui="/ui"),
    )


def _scoped(*components: str) -> Principal:
    grant = Grant(role=Role.VIEWER, components=components, environments=("dev",))
    return Principal(key_id="k", name="k", role=Role.VIEWER, grants=(grant,))


def test_a_partly_scoped_caller_sees_only_its_components() -> None:
    seen = redact(_scoped("web", "docs"), _view())
    assert seen is not None and seen.status is not None
    assert seen.components == {"docs": "v2", "web": "v2"} and seen.redacted == 1
    assert "payments" not in seen.model_dump_json()
    assert seen.failed_component is None and seen.status.failed_component is None
    assert seen.reason == "it concerns a component you may not read"
    assert seen.status.waves == [["docs", REDACTED], ["web"]]
    assert seen.status.graph == {"web": [], "docs": []}


def test_everything_or_nothing_readable() -> None:
    full = Principal(key_id="a", name="a", role=Role.VIEWER)
    assert redact(full, _view()) == _view()
    assert redact(_scoped("web", "docs", "payments"), _view()) == _view()
    assert redact(_scoped("other"), _view()) is None
