"""Which goodput figure the planner uses per (model, instance type), and why.

Preference: measured, then imported, then reference, then estimated; among equals the newest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
