"""A dashboard opened on an empty oracle loads the embedded sample market first, once, in the
background (what `scheduler plan` does on first use), so that a new machine shows a plan, a
market and savings within a minute. Every figure drawn from it is marked sample."""

from __future__ import annotations

import threading
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oracle.db import transaction
from oracle.models import OnDemandPriceModel, SpotPriceModel
from scheduler.config import Settings

#: Fills an empty oracle: (engine, settings, model) -> what was done, in words.
Loader = Callable[[Engine, Settings, str], list[str]]


def load_sample(engine: Engine, settings: Settings, model: str) -> list[str]:
    from scheduler.planning.load import ensure_planning_data

    return ensure_planning_data(engine, settings=settings, model=model)


class FirstUse:
    """The state of the one-off sample load of a service: idle, loading, done or failed."""

    def __init__(self, load: Loader = load_sample) -> None:
        self._load_data = load
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.notes: list[str] = []

    def loading(self, engine: Engine, settings: Settings, model: str) -> bool:
        """True while the oracle is being filled; starts the load when the oracle is empty."""
        with self._lock:
            if self._thread is not None:
                return self._thread.is_alive()
            if self.error is not None or not _oracle_is_empty(engine):
                return False
            self._thread = threading.Thread(
                target=self._load, args=(engine, settings, model), daemon=True
            )
            self._thread.start()
            return True

    def _load(self, engine: Engine, settings: Settings, model: str) -> None:
        try:
            self.notes = self._load_data(engine, settings, model)
        except Exception as error:  # shown on the page
            self.error = str(error).splitlines()[0] if str(error) else type(error).__name__


def _oracle_is_empty(engine: Engine) -> bool:
    with transaction(engine) as session:
        spot = session.scalar(sa.select(SpotPriceModel.id).limit(1))
        on_demand = session.scalar(sa.select(OnDemandPriceModel.id).limit(1))
    return spot is None and on_demand is None
