"""Importing `vllm bench serve` result files (hand-written and recorded from a real server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.importer import import_vllm_results
from bench.record import list_runs
from bench.sweep import Slo
from oracle.db import transaction
from oracle.errors import InputError
from oracle.goodput import best_goodput
from oracle.models import BenchmarkRunModel
from tests.bench.conftest import FIXTURES

RESULT = FIXTURES / "vllm_bench_serve_c4.json"
CPU_SLO = Slo(ttft_p95_ms=2000, tpot_p95_ms=100)


def test_import_one_result(engine: Engine) -> None:
    imported = import_vllm_results(engine, [RESULT], instance_type="c7i.xlarge", slo=CPU_SLO)
    assert imported.model == "smollm2" and imported.points == 1
    # p99 TTFT 1210.7 and p99 TPOT 99.0 bound the p95s within the SLO.
    assert imported.goodput_tokens_per_second == pytest.approx(34.09)
    with transaction(engine) as session:
        (run,) = list_runs(session)
        assert run.source == "imported" and run.status == "complete"
        assert run.instance_type == "c7i.xlarge"
        assert run.workload_id == "imported-64-32"
        assert "vllm_bench_serve_c4.json" in run.source_detail
        (point,) = run.points
        assert point.concurrency == 4 and point.request_rate is None
        assert point.requests == 16 and point.errors == 0
        assert point.latency_ms["ttft_ms_mean"] == pytest.approx(905.3)
        assert point.latency_ms["ttft_ms_p50"] == pytest.approx(880.1)
        assert point.latency_ms["tpot_ms_p99"] == pytest.approx(99.0)
        assert point.passed
        assert best_goodput(session, model="smollm2")["c7i.xlarge"].source == "imported"


def test_import_that_misses_the_slo_is_kept_but_not_used(engine: Engine) -> None:
    tight = Slo(ttft_p95_ms=500, tpot_p95_ms=100)
    imported = import_vllm_results(engine, [RESULT], instance_type="c7i.xlarge", slo=tight)
    assert imported.goodput_tokens_per_second == 0.0
    with transaction(engine) as session:
        (run,) = list_runs(session)
        assert run.status == "slo-not-met"
        assert best_goodput(session, model="smollm2") == {}


def test_several_files_make_one_run_with_the_best_passing_point(
    engine: Engine, tmp_path: Path
) -> None:
    base = json.loads(RESULT.read_text())
    files = []
    for concurrency, rate, ttft_p99 in ((1, 12.0, 400.0), (8, 60.0, 1900.0), (16, 70.0, 4000.0)):
        data = dict(base, max_concurrency=concurrency, output_throughput=rate)
        data["p99_ttft_ms"] = ttft_p99
        path = tmp_path / f"c{concurrency}.json"
        path.write_text(json.dumps(data))
        files.append(path)
    imported = import_vllm_results(
        engine, files, instance_type="g6.xlarge", slo=CPU_SLO, model="other-name"
    )
    assert imported.points == 3 and imported.model == "other-name"
    assert imported.goodput_tokens_per_second == 60.0


def test_recorded_real_result(engine: Engine) -> None:
    path = FIXTURES / "vllm" / "bench_serve_result.json"
    if not path.is_file():
        pytest.skip(f"{path} is not recorded yet")
    data = json.loads(path.read_text())
    imported = import_vllm_results(
        engine, [path], instance_type="c7i.xlarge", slo=Slo(ttft_p95_ms=1e6, tpot_p95_ms=1e6)
    )
    assert imported.model == data["model_id"]
    assert imported.goodput_tokens_per_second == pytest.approx(data["output_throughput"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"completed": 3}', "key 'output_throughput' is missing"),
        ('{"completed": 3, "output_throughput": "fast"}', "key 'output_throughput' must be"),
    ],
)
def test_bad_files_store_nothing(
    engine: Engine, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(InputError, match=message) as caught:
        import_vllm_results(engine, [RESULT, bad], instance_type="g6.xlarge", slo=CPU_SLO)
    assert str(bad) in str(caught.value)
    with transaction(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(BenchmarkRunModel)) == 0


def test_files_naming_different_models_need_model(engine: Engine, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(json.loads(RESULT.read_text()), model_id="llama")))
    with pytest.raises(InputError, match="pass --model"):
        import_vllm_results(engine, [RESULT, other], instance_type="g6.xlarge", slo=CPU_SLO)
