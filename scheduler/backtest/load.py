"""Reading the oracle's history for a backtest: a handful of queries in one session."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy.engine import Engine

from oracle import db
from oracle.models import (
    InstanceTypeModel,
    InterruptionFrequencyModel,
    OnDemandPriceModel,
    PlacementScoreModel,
    SpotPriceModel,
)
from oracle.stats import narrowing, offered_zones
from scheduler.backtest.facts import (
    Advice,
    OnDemandPrice,
    Placement,
    SpotPool,
    Timeline,
    aware,
    timeline,
)
from scheduler.planning.candidates import InstanceSpec


@dataclass
class LoadedHistory:
    """The facts of the selected pools as read (:class:`~scheduler.backtest.market.MarketHistory`
    adds its indexes on top)."""

    pools: list[SpotPool]
    #: Concatenated change records of all pools; pool i owns rows offsets[i]:offsets[i+1].
    offsets: NDArray[np.int64]
    times_s: NDArray[np.float64]
    prices_usd_per_hour: NDArray[np.float64]
    price_sources: list[str]
    on_demand: dict[tuple[str, str], Timeline]
    advisor: dict[tuple[str, str], Timeline]
    placement: dict[int, Timeline]
    zones_offered: dict[tuple[str, str], tuple[str, ...]]
    instance_specs: dict[str, InstanceSpec]


def read_history(
    engine: Engine,
    *,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
    product_description: str,
    operating_system: str,
) -> LoadedHistory:
    """Every spot price change, on-demand price, Advisor entry, placement score, offering and
    instance spec of the selected pools (default: all)."""
    with db.session_factory(engine)() as session:
        connection = session.connection()
        spot = _spot_frame(connection, regions, instance_types, product_description)
        on_demand = _on_demand(connection, regions, instance_types, operating_system)
        advisor = _advisor(connection, regions, instance_types, operating_system)
        placements = _placement_rows(connection, regions)
        offered = offered_zones(connection, regions=regions, instance_types=instance_types)
        specs = _instance_specs(connection)
    pools, offsets = _pools(spot)
    return LoadedHistory(
        pools=pools,
        offsets=offsets,
        times_s=spot["time_s"].to_numpy(dtype=np.float64),
        prices_usd_per_hour=spot["price"].to_numpy(dtype=np.float64),
        price_sources=spot["source"].tolist(),
        on_demand=on_demand,
        advisor=advisor,
        placement=_placement_timelines(pools, placements),
        zones_offered=offered,
        instance_specs=specs,
    )


def _spot_frame(
    connection: sa.Connection,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
    product_description: str,
) -> pd.DataFrame:
    table = SpotPriceModel.__table__
    query = sa.select(
        table.c.region,
        table.c.zone,
        table.c.availability_zone,
        table.c.availability_zone_id,
        table.c.instance_type,
        table.c.timestamp,
        table.c.price_usd_per_hour,
        table.c.source,
    ).where(
        table.c.product_description == product_description,
        *narrowing(table, regions, instance_types),
    )
    rows = connection.execute(query).all()
    frame = pd.DataFrame(
        rows,
        columns=[
            "region",
            "zone",
            "availability_zone",
            "availability_zone_id",
            "instance_type",
            "timestamp",
            "price",
            "source",
        ],
    )
    if frame.empty:
        frame["time_s"] = pd.Series(dtype=float)
        return frame
    frame["time_s"] = [aware(row.timestamp).timestamp() for row in rows]
    frame["price"] = frame["price"].astype(float)
    frame = frame.sort_values(["region", "zone", "instance_type", "time_s"], kind="stable")
    return frame.reset_index(drop=True)


def _pools(frame: pd.DataFrame) -> tuple[list[SpotPool], NDArray[np.int64]]:
    if frame.empty:
        return [], np.zeros(1, dtype=np.int64)
    keys = frame[["region", "zone", "instance_type"]]
    starts = np.flatnonzero(
        np.r_[True, (keys.iloc[1:].to_numpy() != keys.iloc[:-1].to_numpy()).any(axis=1)]
    )
    offsets = np.r_[starts, len(frame)].astype(np.int64)
    pools = []
    for index in range(len(starts)):
        # The newest record names the AZ (as oracle.stats does).
        row = frame.iloc[int(offsets[index + 1]) - 1]
        pools.append(
            SpotPool(
                index=index,
                region=str(row["region"]),
                zone=str(row["zone"]),
                availability_zone=row["availability_zone"],
                availability_zone_id=row["availability_zone_id"],
                instance_type=str(row["instance_type"]),
            )
        )
    return pools, offsets


def _on_demand(
    connection: sa.Connection,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
    operating_system: str,
) -> dict[tuple[str, str], Timeline]:
    table = OnDemandPriceModel.__table__
    query = (
        sa.select(table)
        .where(
            table.c.operating_system == operating_system, *narrowing(table, regions, instance_types)
        )
        .order_by(
            table.c.region, table.c.instance_type, table.c.effective_date, table.c.observed_at
        )
    )
    grouped: dict[tuple[str, str], dict[float, OnDemandPrice]] = {}
    for row in connection.execute(query):
        effective = aware(row.effective_date)
        # Among rows of one effective date, the newest observation wins (as oracle.stats).
        grouped.setdefault((row.region, row.instance_type), {})[effective.timestamp()] = (
            OnDemandPrice(float(row.price_usd_per_hour), row.source, effective)
        )
    return {key: timeline(values) for key, values in grouped.items()}


def _advisor(
    connection: sa.Connection,
    regions: Collection[str] | None,
    instance_types: Collection[str] | None,
    operating_system: str,
) -> dict[tuple[str, str], Timeline]:
    table = InterruptionFrequencyModel.__table__
    query = (
        sa.select(table)
        .where(
            table.c.operating_system == operating_system, *narrowing(table, regions, instance_types)
        )
        .order_by(table.c.observed_at)
    )
    grouped: dict[tuple[str, str], dict[float, Advice]] = {}
    for row in connection.execute(query):
        observed = aware(row.observed_at)
        grouped.setdefault((row.region, row.instance_type), {})[observed.timestamp()] = Advice(
            int(row.band_index), row.band_label, float(row.savings_pct), row.source, observed
        )
    return {key: timeline(values) for key, values in grouped.items()}


def _placement_rows(connection: sa.Connection, regions: Collection[str] | None) -> list[Any]:
    table = PlacementScoreModel.__table__
    query = sa.select(table).order_by(table.c.observed_at)
    if regions:
        query = query.where(table.c.region.in_(list(regions)))
    return list(connection.execute(query))


def _placement_timelines(pools: list[SpotPool], rows: list[Any]) -> dict[int, Timeline]:
    """Per pool, its scores as :func:`oracle.stats.pool_stats` would answer after each moment a
    placement answer arrived that concerns it: the AZ-level answers for its AZ ID, else the
    region-level ones; among answers that asked about the type the narrowest question wins,
    then the newest; the latest answer per (scope, types asked, capacity) counts."""
    pools_by_scope: dict[tuple[str, str, str], list[SpotPool]] = {}
    for pool in pools:
        for scope in (pool.availability_zone_id, "region"):
            if scope is not None:
                key = (pool.region, scope, pool.instance_type)
                pools_by_scope.setdefault(key, []).append(pool)
    # (region, scope, type) -> {(types asked, capacity): latest row}
    latest: dict[tuple[str, str, str], dict[tuple[str, int], Any]] = {}
    moments: dict[float, list[Any]] = {}
    for row in rows:
        moments.setdefault(aware(row.observed_at).timestamp(), []).append(row)
    series: dict[int, dict[float, Placement]] = {}
    for moment in sorted(moments):
        touched: set[int] = set()
        for row in moments[moment]:
            for instance_type in row.instance_types.split(","):
                key = (row.region, row.scope, instance_type)
                latest.setdefault(key, {})[(row.instance_types, row.target_capacity)] = row
                touched.update(pool.index for pool in pools_by_scope.get(key, ()))
        for index in sorted(touched):
            placement = _pool_placement(latest, pools[index])
            if placement is not None:
                series.setdefault(index, {})[moment] = placement
    return {index: timeline(values) for index, values in series.items()}


def _pool_placement(
    latest: Mapping[tuple[str, str, str], Mapping[tuple[str, int], Any]], pool: SpotPool
) -> Placement | None:
    for scope in (pool.availability_zone_id, "region"):
        if scope is None:
            continue
        best: dict[int, Any] = {}
        for (asked_text, capacity), row in latest.get(
            (pool.region, scope, pool.instance_type), {}
        ).items():
            rank = (-len(asked_text.split(",")), aware(row.observed_at))
            held = best.get(capacity)
            if held is None or rank > (
                -len(held.instance_types.split(",")),
                aware(held.observed_at),
            ):
                best[capacity] = row
        if best:
            newest = max(best.values(), key=lambda row: aware(row.observed_at))
            scores = {capacity: int(row.score) for capacity, row in sorted(best.items())}
            return Placement(scores, newest.source, aware(newest.observed_at))
    return None


def _instance_specs(connection: sa.Connection) -> dict[str, InstanceSpec]:
    table = InstanceTypeModel.__table__
    return {
        row.instance_type: InstanceSpec(
            instance_type=row.instance_type,
            vcpus=int(row.vcpus),
            accelerator_name=row.accelerator_name,
            accelerator_count=int(row.accelerator_count),
            accelerator_memory_mib_each=int(row.accelerator_memory_mib_each),
        )
        for row in connection.execute(sa.select(table))
    }
