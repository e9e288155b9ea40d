"""Importing another tool's results: the result JSON of ``vllm bench serve``.

``vllm bench serve --save-result`` writes one JSON object per run with keys such as
``model_id``, ``max_concurrency``, ``request_rate``, ``completed``, ``failed``,
``output_throughput``, ``total_token_throughput``, ``mean_ttft_ms``, ``p99_ttft_ms``,
``mean_tpot_ms``... (``pNN_`` only for the percentiles asked with ``--metric-percentiles``,
99 by default; per-request lists such as ``ttfts`` only with ``--save-detailed``).

Each file becomes one point of one imported run (pass the files of a sweep together). A point
passes the SLO when its p95 TTFT and TPOT are within it; where a file has no p95, its p99 is
used as an upper bound (p95 <= p99), and a point whose p95 cannot be bounded does not pass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from bench.loadgen import PointMetrics
from bench.record import RunMeta, add_run
from bench.sweep import Slo, SweepState
from oracle.db import transaction
from oracle.errors import InputError
from oracle.models import BenchmarkRunModel

REQUIRED_KEYS = ("output_throughput", "completed")
LATENCIES = ("ttft", "tpot", "itl", "e2el")


@dataclass(frozen=True)
class ImportedRun:
    run_id: int
    model: str
    points: int
    goodput_tokens_per_second: float


def import_vllm_results(
    engine: Engine,
    paths: Sequence[Path],
    *,
    instance_type: str,
    slo: Slo,
    model: str | None = None,
    gpu_count: int = 1,
    tensor_parallel: int = 1,
) -> ImportedRun:
    """Read the result files and store them as one run with provenance ``imported`` (all or
    nothing: a bad file stores nothing)."""
    if not paths:
        raise InputError("no result file given; pass the JSON written by vllm bench serve")
    loaded = [(path, _load(path)) for path in paths]
    models = {str(data.get("model_id", "")) for _path, data in loaded} - {""}
    if model is None:
        if len(models) != 1:
            raise InputError(
                f"the result files name models {sorted(models) or 'none'}; pass --model NAME"
            )
        model = models.pop()
    state = SweepState(complete=True)
    for path, data in loaded:
        point = point_from_result(path, data)
        point.passed = slo_bound_passes(point, slo)
        state.points.append(point)
    first = loaded[0][1]
    completed = sum(int(data["completed"]) for _path, data in loaded)
    mean_in = sum(int(data.get("total_input_tokens", 0)) for _p, data in loaded) / max(completed, 1)
    mean_out = sum(int(data.get("total_output_tokens", 0)) for _p, data in loaded) / max(
        completed, 1
    )
    observed_at = max(_date(data) or datetime.now(UTC) for _path, data in loaded)
    meta = RunMeta(
        model=model,
        instance_type=instance_type,
        workload_id=f"imported-{round(mean_in)}-{round(mean_out)}",
        slo=slo,
        gpu_count=gpu_count,
        tensor_parallel=tensor_parallel,
        engine=_engine_name(first),
        engine_version=str(first.get("vllm_version", first.get("version", ""))),
        endpoint=str(first.get("base_url", "")),
        host="",
        finished_at=observed_at,
        source="imported",
        source_detail="vllm bench serve: " + ", ".join(path.name for path, _data in loaded),
        details={"files": [str(path) for path, _data in loaded]},
    )
    if state.best_point is None:
        state.complete = False
    with transaction(engine) as session:
        run_id = add_run(session, meta=meta, state=state)
        if state.best_point is None:
            # Stored, but the planner must not use it: no point met the SLO.
            run = session.get(BenchmarkRunModel, run_id)
            assert run is not None
            run.status = "slo-not-met"
    return ImportedRun(run_id, model, len(state.points), state.goodput_tokens_per_second)


def point_from_result(path: Path, data: dict[str, Any]) -> PointMetrics:
    """One sweep point from one result object."""
    completed = int(data["completed"])
    failed = int(data.get("failed", 0) or 0)
    if "failed" not in data and isinstance(data.get("errors"), list):
        # Older versions keep only the per-request error strings ("" for a success).
        failed = sum(1 for error in data["errors"] if error)
    requests = completed + failed
    duration = float(data.get("duration", 0.0) or 0.0)
    latency: dict[str, float] = {}
    for name in LATENCIES:
        for key, value in data.items():
            prefix = f"_{name}_ms"
            if key.endswith(prefix) and isinstance(value, int | float):
                stat = key[: -len(prefix)]
                stat = {"median": "p50"}.get(stat, stat)
                if stat in ("mean", "std") or stat.startswith("p"):
                    latency[f"{name}_ms_{stat}"] = float(value)
        if f"{name}_ms_p95" not in latency:
            _p95_from_lists(latency, name, data)
    rate = data.get("request_rate")
    request_rate = float(rate) if isinstance(rate, int | float) and math.isfinite(rate) else None
    concurrency = data.get("max_concurrency")
    return PointMetrics(
        concurrency=int(concurrency) if isinstance(concurrency, int) else None,
        request_rate=request_rate,
        requests=requests,
        errors=failed,
        error_rate=failed / requests if requests else 0.0,
        duration_s=duration,
        request_per_second=float(data.get("request_throughput", 0.0) or 0.0),
        output_tokens_per_second=_number(path, data, "output_throughput"),
        total_tokens_per_second=float(data.get("total_token_throughput", 0.0) or 0.0),
        latency_ms=latency,
        input_tokens=int(data.get("total_input_tokens", 0) or 0),
        output_tokens=int(data.get("total_output_tokens", 0) or 0),
    )


def slo_bound_passes(point: PointMetrics, slo: Slo) -> bool:
    """Whether the point surely met the SLO: p95 within it, or p99 (an upper bound) within it."""
    if point.requests and point.errors == point.requests:
        return False
    if point.errors and point.error_rate >= slo.max_error_rate:
        return False
    for name, bound in (("ttft", slo.ttft_p95_ms), ("tpot", slo.tpot_p95_ms)):
        value = point.latency_ms.get(f"{name}_ms_p95", point.latency_ms.get(f"{name}_ms_p99"))
        if value is None or value > bound:
            return False
    return True


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(
            f"{path}: not valid JSON ({error}); pass the file written by vllm bench serve "
            "--save-result"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object (a vllm bench serve result)")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise InputError(
                f"{path}: key '{key}' is missing; is this a vllm bench serve result "
                "(--save-result)?"
            )
    _number(path, data, "completed")
    return data


def _number(path: Path, data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InputError(f"{path}: key '{key}' must be a number (got {value!r})")
    return float(value)


def _p95_from_lists(latency: dict[str, float], name: str, data: dict[str, Any]) -> None:
    # --save-detailed adds per-request lists in seconds: ttfts, and itls (a list per request).
    if name == "ttft" and isinstance(data.get("ttfts"), list):
        values = [v for v in data["ttfts"] if isinstance(v, int | float) and v > 0]
        if values:
            latency["ttft_ms_p95"] = float(np.percentile(np.asarray(values) * 1000, 95))
    if name == "itl" and isinstance(data.get("itls"), list):
        gaps = [g for row in data["itls"] if isinstance(row, list) for g in row]
        if gaps:
            latency["itl_ms_p95"] = float(np.percentile(np.asarray(gaps) * 1000, 95))


def _engine_name(data: dict[str, Any]) -> str:
    backend = str(data.get("backend", "vllm"))
    return backend if backend in ("sglang", "tgi", "lmdeploy", "trt-llm") else "vllm"


def _date(data: dict[str, Any]) -> datetime | None:
    # vLLM writes "date": "%Y%m%d-%H%M%S" in the machine's local time; taken as UTC.
    value = data.get("date")
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
