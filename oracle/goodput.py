"""Which goodput figure the planner uses per (model, instance type), and why.

Preference: measured, then imported, then reference, then estimated; among equals the newest.
Only complete runs with a positive goodput count: an interrupted sweep, or imported results
that never met the SLO, are kept in the store but never planned on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from oracle.tables import benchmark_runs

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: A ``benchmark_runs`` row as a query returns it.
RunRow = sa.Row[Any]

#: Provenance of goodput figures, most trusted first.
GOODPUT_PREFERENCE = ("measured", "imported", "reference", "estimated")


@dataclass(frozen=True)
class GoodputFact:
    model: str
    instance_type: str
    goodput_tokens_per_second: float
    source: str
    source_detail: str
    observed_at: datetime
    gpu_count: int
    tensor_parallel: int
    workload_id: str
    run_id: int
    #: The workload bucket the figure is for ('' for the whole workload).
    bucket: str = ""


def best_goodput(session: Session | sa.Connection, *, model: str) -> dict[str, GoodputFact]:
    """Instance type -> the goodput figure the planner uses for ``model``, and its provenance."""
    run_ = benchmark_runs.c
    runs = session.execute(
        sa.select(benchmark_runs).where(
            run_.model == model,
            # Per-bucket figures are a workload's mix (best_bucket_goodput), not the one number.
            run_.bucket == "",
            run_.status == "complete",
            run_.goodput_tokens_per_second > 0,
            run_.source.in_(GOODPUT_PREFERENCE),
        )
    )
    best: dict[str, RunRow] = {}
    for run in runs:
        current = best.get(run.instance_type)
        if current is None or _rank(run) < _rank(current):
            best[run.instance_type] = run
    return {instance_type: _fact(run) for instance_type, run in sorted(best.items())}


def best_bucket_goodput(
    session: Session | sa.Connection, *, model: str, workload_id: str
) -> dict[str, dict[str, GoodputFact]]:
    """Instance type -> bucket -> the best stored per-bucket figure of ``workload_id`` (same
    preference as :func:`best_goodput`)."""
    run_ = benchmark_runs.c
    runs = session.execute(
        sa.select(benchmark_runs).where(
            run_.model == model,
            run_.workload_id == workload_id,
            run_.bucket != "",
            run_.status == "complete",
            run_.goodput_tokens_per_second > 0,
            run_.source.in_(GOODPUT_PREFERENCE),
        )
    )
    best: dict[tuple[str, str], RunRow] = {}
    for run in runs:
        key = (run.instance_type, run.bucket)
        current = best.get(key)
        if current is None or _rank(run) < _rank(current):
            best[key] = run
    facts: dict[str, dict[str, GoodputFact]] = {}
    for (instance_type, bucket), run in sorted(best.items()):
        facts.setdefault(instance_type, {})[bucket] = _fact(run)
    return facts


def _rank(run: RunRow) -> tuple[int, float, int]:
    """Smaller is better: provenance first, then the newest, then the latest stored."""
    return (GOODPUT_PREFERENCE.index(run.source), -run.observed_at.timestamp(), -run.id)


def _fact(run: RunRow) -> GoodputFact:
    return GoodputFact(
        model=run.model,
        instance_type=run.instance_type,
        goodput_tokens_per_second=run.goodput_tokens_per_second,
        source=run.source,
        source_detail=run.source_detail,
        observed_at=run.observed_at,
        gpu_count=run.gpu_count,
        tensor_parallel=run.tensor_parallel,
        workload_id=run.workload_id,
        run_id=run.id,
        bucket=run.bucket,
    )
