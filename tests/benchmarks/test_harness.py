"""The capacity benchmark's search and its report without the peer (the figures themselves are
speed, measured by `python -m benchmarks.harness`, never asserted here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.vllm_env import CACHE_ENV_VAR
from benchmarks.harness import CapacityPoint, compare_capacity, main, sweep_capacity


def _point(concurrency: int, kept_up: bool) -> CapacityPoint:
    return CapacityPoint(
        concurrency=concurrency,
        offered_tokens_per_second=float(concurrency),
        consumed_tokens_per_second=float(concurrency),
        client_tokens_per_second=float(concurrency),
        server_gap_ms=20.0,
        measured_gap_ms_mean=20.0,
        measured_gap_ms_median=20.0,
        errors=0,
        kept_up=kept_up,
        client_cpu_us_per_token=1.0,
    )


@given(
    threshold=st.integers(0, 5000),
    start=st.integers(1, 64),
    extra=st.integers(0, 4096),
)
def test_sweep_finds_the_largest_kept_up_concurrency_to_within_an_eighth(
    threshold: int, start: int, extra: int
) -> None:
    maximum = start + extra
    points = sweep_capacity(lambda c: _point(c, c <= threshold), start, maximum)
    measured = [p.concurrency for p in points]
    assert measured[0] == start
    assert all(1 <= c <= maximum for c in measured)
    assert len(set(measured)) == len(measured)
    kept = [p.concurrency for p in points if p.kept_up]
    good = max(kept, default=0)
    assert good <= threshold
    failed = [p.concurrency for p in points if not p.kept_up]
    if threshold == 0:
        assert good == 0 and min(failed) == 1
    elif failed:
        # The first failing concurrency lies above the threshold, and bisection closes in.
        assert threshold - good <= max(1, good // 8)
    else:
        # Never failed: doubling stopped at the cap.
        assert good * 2 > maximum


def test_without_the_vllm_environment_the_peer_is_skipped_with_the_build_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "no-cache"))
    affinity = os.sched_getaffinity(0)
    result = compare_capacity(
        gap_s=0.02, output_tokens=4, start_concurrency=2, max_concurrency=4, waves=1
    )
    assert result.peer is None
    assert result.ratio is None
    assert "build-vllm-cpu-env.sh" in result.peer_missing
    assert result.harness.points[0].concurrency == 2
    assert all(p.offered_tokens_per_second == p.concurrency / 0.02 for p in result.harness.points)
    # The client was pinned for the run only.
    assert os.sched_getaffinity(0) == affinity
    if len(affinity) > 1:
        assert len(result.harness.cpus) == 1
        assert set(result.server_cpus) == affinity - set(result.harness.cpus)

    args = "--gap-ms 20 --output-tokens 4 --waves 1 --start-concurrency 2 --max-concurrency 4"
    main(args.split())
    out = capsys.readouterr().out
    assert "vllm bench serve: not measured" in out
    assert "build-vllm-cpu-env.sh" in out
    assert "ratio harness/peer: n/a" in out
