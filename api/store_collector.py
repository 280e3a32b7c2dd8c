"""The shape every collector read from the store at each scrape shares.

Any API replica answers the same, and nothing goes stale when a worker stops: the families
are computed from the store on the metrics server's own thread (api.metrics.scrape_engine).
Registering never queries the store; a store error leaves the families empty for that scrape
and logs a warning, and the scrape itself still succeeds.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from api.metrics import scrape_engine
from core.settings import Settings

log = logging.getLogger(__name__)


class Families(Protocol):
    """One scrape's empty families, filled by `StoreCollector._fill`."""

    def all(self) -> Iterable[Metric]: ...


F = TypeVar("F", bound=Families)


class StoreCollector(ABC, Collector, Generic[F]):
    """Families computed from the store at every scrape; `what` names them in the warning."""

    what: str = "store metrics"

    def __init__(self, settings: Settings, now: Callable[[], datetime] | None = None) -> None:
        self._engine = scrape_engine(settings)
        self._now = now or (lambda: datetime.now(UTC))

    @abstractmethod
    def _families(self) -> F:
        """A new set of empty families."""

    @abstractmethod
    def _fill(self, conn: Connection, families: F) -> None:
        """Add this scrape's samples to `families`."""

    def describe(self) -> Iterable[Metric]:
        # Registering must not query the store.
        return list(self._families().all())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        try:
            with self._engine.connect() as conn:
                self._fill(conn, families)
        except SQLAlchemyError as err:
            log.warning("%s not read for /metrics: %s", self.what, type(err).__name__)
            families = self._families()
        return list(families.all())

    def close(self) -> None:
        self._engine.dispose()
