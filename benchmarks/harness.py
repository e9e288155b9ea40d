"""Whether the harness tells the truth about goodput, and how fast a token stream it consumes
on one core while still timing it right, beside `vllm bench serve` measured the same way.

``python -m benchmarks.harness`` (part 0, the known-timing check; ``--known-timing-only`` runs
only it): the fake server in its own process with the timing of issue 14 (TTFT 50 ms, each
further token 10 ms x (1 + 0.05 (n - 1)) with n requests open, batch size 32), so that the
closed-loop rate at every concurrency and the goodput at the SLO (TPOT p95 <= 20.25 ms: true
at concurrency 21, 20.0 ms, not at 22, 20.5 ms) are known. It prints, per concurrency up to the
batch size, the true tok/s, the harness's steady-state and whole-run figures and their ratios
to the truth (goal: steady-state within 3%), then runs the goodput sweep and prints the goodput
found against the true one (goal: within 5%; the whole-run figure was 9-11% low).

``python -m benchmarks.harness`` (part 1): the fake server (its own process, on the other core
where there is one) streams ``--output-tokens`` tokens per request with a fixed inter-token
gap; each client in turn (the harness in this process, then `vllm bench serve` as a child
process, both pinned to the same one core) runs closed-loop points at rising concurrency. The
offered rate is concurrency / gap. A point is kept up with when it has no errors and the mean
and the median inter-token gap the client measured (the peer's ``mean_itl_ms`` and
``median_itl_ms``) are both within 1 ms of the gap the server actually produced for that
client's requests (by its own clock, ``GET /fake/stats``, so that a late server is not blamed
on the client). Each figure is the largest token rate kept up with (the point's output tokens
over its span by the server's clock, one ruler for both; each client's own figure is printed
beside it), found by doubling the concurrency from ``--start-concurrency``, then bisecting
between the last good and the first bad one; the ratio is harness / peer. The peer runs from
the vLLM CPU environment that scripts/build-vllm-cpu-env.sh builds; without it the peer is
skipped and the build command is printed.

Part 2 (the real vLLM CPU server, beside ``vllm bench serve``) calls :func:`harness_point`
for the harness's figures of one fixed point.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.client import Api, RequestResult
from bench.fakeserver import (
    FakeServerConfig,
    fake_server_process,
    true_output_tokens_per_second,
    true_tpot_s,
)
from bench.loadgen import PointMetrics, Target, closed_loop_pool, run_closed_loop, summarize
from bench.peer import PeerError, PeerWorkload, run_vllm_bench_serve
from bench.sweep import Slo, SweepOptions, requests_for_point, run_sweep
from bench.vllm_env import VllmCpuEnv, VllmEnvMissingError, locate_vllm_cpu_env
from bench.workloads import fixed_workload, make_requests

#: A measured gap may differ from the server's by at most this much (the issue's criterion).
MAX_GAP_ERROR_S = 0.001
#: Prompt length of every request (the fake server's speed does not depend on it).
INPUT_TOKENS = 8
#: The model name the fake server serves (both clients ask for it).
MODEL = "perf"

#: Part 0: the known-timing server of issue 14, its SLO and the output length of each request.
KNOWN_TIMING = FakeServerConfig(
    model=MODEL, ttft_s=0.05, gap_s=0.01, gap_growth_per_open=0.05, batch_limit=32
)
KNOWN_TIMING_SLO = Slo(ttft_p95_ms=500.0, tpot_p95_ms=20.25)
KNOWN_TIMING_OUTPUT_TOKENS = 64
KNOWN_TIMING_LEVELS = (1, 2, 4, 8, 16, 20, 24, 32)


@dataclass(frozen=True)
class KnownTimingPoint:
    concurrency: int
    true_tokens_per_second: float
    steady_tokens_per_second: float
    whole_run_tokens_per_second: float
    steady_requests: int
    requests: int

    @property
    def steady_ratio(self) -> float:
        return self.steady_tokens_per_second / self.true_tokens_per_second

    @property
    def whole_run_ratio(self) -> float:
        return self.whole_run_tokens_per_second / self.true_tokens_per_second


@dataclass(frozen=True)
class KnownTimingResult:
    points: tuple[KnownTimingPoint, ...]
    true_goodput_tokens_per_second: float
    true_goodput_concurrency: int
    goodput_tokens_per_second: float
    goodput_concurrency: int | None
    #: The whole-run figure of the same best point (what goodput was before steady state).
    whole_run_goodput_tokens_per_second: float
    sweep: tuple[PointMetrics, ...]


def known_timing_check(
    config: FakeServerConfig = KNOWN_TIMING,
    *,
    slo: Slo = KNOWN_TIMING_SLO,
    output_tokens: int = KNOWN_TIMING_OUTPUT_TOKENS,
    levels: Sequence[int] = KNOWN_TIMING_LEVELS,
    options: SweepOptions | None = None,
) -> KnownTimingResult:
    """Part 0: the harness's steady-state and whole-run tok/s at ``levels`` against the known
    truth, then the goodput sweep against the true goodput."""
    options = options or SweepOptions(max_concurrency=config.batch_limit)
    workload = fixed_workload(INPUT_TOKENS, output_tokens, api="completions")
    with fake_server_process(config) as url:
        target = Target(url, config.model, 600.0)
        points = []
        for concurrency in levels:

            async def run(c: int = concurrency) -> PointMetrics:
                results: list[RequestResult] = []
                count = requests_for_point(options, c)
                async with closed_loop_pool(c) as pool:
                    await pool.warm(url, c)
                    duration = await run_closed_loop(
                        pool,
                        target,
                        make_requests(workload, count, seed=options.seed),
                        concurrency=c,
                        results=results,
                    )
                return summarize(results, duration, concurrency=c)

            point = asyncio.run(run())
            points.append(
                KnownTimingPoint(
                    concurrency=concurrency,
                    true_tokens_per_second=true_output_tokens_per_second(
                        config,
                        concurrency=concurrency,
                        input_tokens=INPUT_TOKENS,
                        output_tokens=output_tokens,
                    ),
                    steady_tokens_per_second=point.goodput_tokens_per_second,
                    whole_run_tokens_per_second=point.output_tokens_per_second,
                    steady_requests=point.steady_requests,
                    requests=point.requests,
                )
            )
        state = asyncio.run(run_sweep(target, workload, slo, options))
    true_c = max(
        c
        for c in range(1, config.batch_limit + 1)
        if true_tpot_s(config, concurrency=c, input_tokens=INPUT_TOKENS) * 1000 <= slo.tpot_p95_ms
    )
    best = state.best_point
    return KnownTimingResult(
        points=tuple(points),
        true_goodput_tokens_per_second=true_output_tokens_per_second(
            config, concurrency=true_c, input_tokens=INPUT_TOKENS, output_tokens=output_tokens
        ),
        true_goodput_concurrency=true_c,
        goodput_tokens_per_second=state.goodput_tokens_per_second,
        goodput_concurrency=best.concurrency if best else None,
        whole_run_goodput_tokens_per_second=best.output_tokens_per_second if best else 0.0,
        sweep=tuple(state.curve()),
    )


def print_known_timing(result: KnownTimingResult) -> None:
    config = KNOWN_TIMING
    print(
        f"known-timing server: TTFT {config.ttft_s * 1000:g} ms, gap {config.gap_s * 1000:g} ms "
        f"x (1 + {config.gap_growth_per_open:g} (n - 1)), batch {config.batch_limit}, "
        f"{KNOWN_TIMING_OUTPUT_TOKENS} output tokens per request"
    )
    print(
        "concurrency  requests  in window  true tok/s  steady tok/s  ratio  whole-run tok/s  ratio"
    )
    for p in result.points:
        print(
            f"{p.concurrency:>11}  {p.requests:>8}  {p.steady_requests:>9}  "
            f"{p.true_tokens_per_second:>10.0f}  {p.steady_tokens_per_second:>12.0f}  "
            f"{p.steady_ratio:>5.3f}  {p.whole_run_tokens_per_second:>15.0f}  "
            f"{p.whole_run_ratio:>5.3f}"
        )
    worst = max(abs(p.steady_ratio - 1) for p in result.points)
    print(f"steady-state tok/s: worst error {worst:.1%} (goal <= 3%)")
    goodput_ratio = result.goodput_tokens_per_second / result.true_goodput_tokens_per_second
    whole_ratio = result.whole_run_goodput_tokens_per_second / result.true_goodput_tokens_per_second
    print(
        f"goodput at TPOT p95 <= {KNOWN_TIMING_SLO.tpot_p95_ms:g} ms: found "
        f"{result.goodput_tokens_per_second:.0f} tok/s at concurrency "
        f"{result.goodput_concurrency}, true {result.true_goodput_tokens_per_second:.0f} tok/s "
        f"at concurrency {result.true_goodput_concurrency}: ratio {goodput_ratio:.3f} (goal "
        f">= 0.95; the same point's whole-run figure: {whole_ratio:.3f})"
    )
    levels = ", ".join(f"{p.concurrency}:{'pass' if p.passed else 'fail'}" for p in result.sweep)
    print(f"sweep points: {levels}\n")


@dataclass(frozen=True)
class CapacityPoint:
    concurrency: int
    offered_tokens_per_second: float
    #: Output tokens of the point's streams over the span from the first arrival to the last
    #: token, by the server's clock: one ruler for both clients (the figure compared).
    consumed_tokens_per_second: float
    #: The same as the client itself reports it (its own clock and span).
    client_tokens_per_second: float
    server_gap_ms: float
    measured_gap_ms_mean: float
    measured_gap_ms_median: float
    errors: int
    kept_up: bool
    #: CPU time of the client per token consumed: what a dedicated core allows (1e6 / this
    #: tok/s) even where other load shares the core. NaN for the peer (its process's CPU time
    #: includes its start-up).
    client_cpu_us_per_token: float
    #: Why a point failed when the client itself failed (the peer's error), else empty.
    note: str = ""


@dataclass(frozen=True)
class CapacityResult:
    client: str
    gap_s: float
    output_tokens: int
    best: CapacityPoint | None
    points: tuple[CapacityPoint, ...]
    #: The cores the client ran on (empty where affinity cannot be set).
    cpus: tuple[int, ...] = ()

    @property
    def tokens_per_second(self) -> float:
        return self.best.consumed_tokens_per_second if self.best else 0.0


@dataclass(frozen=True)
class CapacityComparison:
    """Both clients' capacity on one fake server; ``peer`` is None when it was not measured,
    and ``peer_missing`` then says why (with the build command when the environment is missing)."""

    harness: CapacityResult
    peer: CapacityResult | None
    peer_missing: str
    server_cpus: tuple[int, ...]

    @property
    def ratio(self) -> float | None:
        """harness / peer tok/s (None without a peer figure)."""
        if self.peer is None or not self.peer.tokens_per_second:
            return None
        return self.harness.tokens_per_second / self.peer.tokens_per_second


def compare_capacity(
    *,
    gap_s: float = 0.02,
    output_tokens: int = 64,
    start_concurrency: int = 16,
    max_concurrency: int = 4096,
    waves: int = 2,
    peer: bool = True,
    vllm_env: VllmCpuEnv | None = None,
) -> CapacityComparison:
    """Part 1: the harness's and then the peer's largest kept-up token rate on one core, against
    one fake server on the other core(s), at the same settings and by the same criterion."""
    peer_missing = "not asked for (--no-peer)"
    if peer and vllm_env is None:
        try:
            vllm_env = locate_vllm_cpu_env()
            peer_missing = ""
        except VllmEnvMissingError as error:
            peer_missing = str(error)
    elif peer:
        peer_missing = ""
    with _pinned_fake_server(gap_s, max_concurrency) as (url, client_cpus, server_cpus):
        harness = CapacityResult(
            "harness",
            gap_s,
            output_tokens,
            *_best_and_points(
                sweep_capacity(
                    lambda c: _harness_point(url, c, gap_s, output_tokens, waves),
                    start_concurrency,
                    max_concurrency,
                )
            ),
            client_cpus,
        )
        peer_result = None
        if peer and vllm_env is not None:
            env = vllm_env
            with tempfile.TemporaryDirectory(prefix="harness-peer-") as scratch:
                peer_result = CapacityResult(
                    "vllm bench serve",
                    gap_s,
                    output_tokens,
                    *_best_and_points(
                        sweep_capacity(
                            lambda c: _peer_point(
                                env, url, c, gap_s, output_tokens, waves, Path(scratch)
                            ),
                            start_concurrency,
                            max_concurrency,
                        )
                    ),
                    client_cpus,
                )
    return CapacityComparison(harness, peer_result, peer_missing, server_cpus)


def harness_point(
    endpoint: str,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    concurrency: int,
    num_requests: int,
    api: Api = "completions",
    timeout_s: float = 600.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Part 2 hook: the harness's figures of one closed-loop point against ``endpoint``, in
    the key names of ``vllm bench serve``'s result JSON (``output_throughput``,
    ``mean_ttft_ms``, ``mean_tpot_ms``, ``mean_itl_ms``, ``p99_ttft_ms``...)."""

    async def run() -> tuple[list[RequestResult], float]:
        results: list[RequestResult] = []
        async with closed_loop_pool(concurrency) as pool:
            await pool.warm(endpoint, concurrency)
            duration = await run_closed_loop(
                pool,
                Target(endpoint.rstrip("/"), model, timeout_s),
                make_requests(
                    fixed_workload(input_tokens, output_tokens, api=api), num_requests, seed=seed
                ),
                concurrency=concurrency,
                results=results,
            )
        return results, duration

    results, duration = asyncio.run(run())
    point = summarize(results, duration, concurrency=concurrency)
    figures: dict[str, Any] = {
        "completed": point.requests - point.errors,
        "failed": point.errors,
        "duration": point.duration_s,
        "total_output_tokens": point.output_tokens,
        "request_throughput": point.request_per_second,
        "output_throughput": point.output_tokens_per_second,
        "total_token_throughput": point.total_tokens_per_second,
    }
    for key, value in point.latency_ms.items():
        name, _ms, stat = key.split("_")  # "ttft_ms_p95" -> ttft, ms, p95
        figures[f"{'median' if stat == 'p50' else stat}_{name}_ms"] = value
    return figures


def sweep_capacity(
    measure: Callable[[int], CapacityPoint], start_concurrency: int, max_concurrency: int
) -> list[CapacityPoint]:
    """The points ``measure`` gives while looking for the largest kept-up concurrency: doubling
    from ``start_concurrency`` (halving instead when that fails) up to ``max_concurrency``, then
    bisecting between the last good and the first bad one to within 1/8 of the good one."""
    points: list[CapacityPoint] = []
    good = bad = 0
    concurrency = start_concurrency
    while 1 <= concurrency <= max_concurrency:
        point = measure(concurrency)
        points.append(point)
        if not point.kept_up:
            bad = concurrency
            break
        good = concurrency
        concurrency *= 2
    concurrency = bad // 2
    while not good and concurrency >= 1:
        point = measure(concurrency)
        points.append(point)
        if point.kept_up:
            good = concurrency
        else:
            bad = concurrency
            concurrency //= 2
    while good and bad and bad - good > max(1, good // 8):
        middle = (good + bad) // 2
        point = measure(middle)
        points.append(point)
        if point.kept_up:
            good = middle
        else:
            bad = middle
    return points


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="The token rate the harness keeps up with on one core, beside `vllm bench "
        "serve` measured the same way on the same fake server (part 1)."
    )
    parser.add_argument("--gap-ms", type=float, default=20.0, help="server inter-token gap")
    parser.add_argument("--output-tokens", type=int, default=64, help="per request")
    parser.add_argument("--start-concurrency", type=int, default=16)
    parser.add_argument("--max-concurrency", type=int, default=4096)
    parser.add_argument(
        "--waves", type=int, default=2, help="requests per point = waves x concurrency"
    )
    parser.add_argument(
        "--known-timing-only",
        action="store_true",
        help="run part 0 only: steady-state tok/s and goodput against the known-timing server",
    )
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="measure the harness only (the peer, `vllm bench serve`, takes about 20 s a point "
        "to start)",
    )
    args = parser.parse_args(argv)
    # Other work on the machine shares the cores: the load average says how much.
    load_before = os.getloadavg()[0]
    print(f"load average {load_before:.1f}")
    print_known_timing(known_timing_check())
    if args.known_timing_only:
        return
    result = compare_capacity(
        gap_s=args.gap_ms / 1000,
        output_tokens=args.output_tokens,
        start_concurrency=args.start_concurrency,
        max_concurrency=args.max_concurrency,
        waves=args.waves,
        peer=not args.no_peer,
    )
    print(
        f"server gap {args.gap_ms:g} ms, {args.output_tokens} tokens per request, "
        f"{args.waves} x concurrency requests per point; server on cpus "
        f"{list(result.server_cpus) or 'any'}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    for side in (result.harness, result.peer):
        if side is not None:
            _print_sweep(side)
    harness = result.harness
    print(f"harness:          {harness.tokens_per_second:>7.0f} tok/s on {_cores(harness)}")
    if result.peer is None:
        print(f"vllm bench serve: not measured: {result.peer_missing}")
        print("ratio harness/peer: n/a")
        return
    print(f"vllm bench serve: {result.peer.tokens_per_second:>7.0f} tok/s on {_cores(result.peer)}")
    ratio = result.ratio
    if ratio is None:
        print("ratio harness/peer: n/a (the peer kept up with no point)")
    else:
        print(f"ratio harness/peer: {ratio:.2f} (goal >= 1)")


def _print_sweep(result: CapacityResult) -> None:
    print(f"\n{result.client} (on cpus {list(result.cpus) or 'any'}):")
    print(
        "concurrency  offered tok/s  consumed tok/s  (client's own)  server gap ms  "
        "mean gap ms  median  kept up  client CPU us/token"
    )
    for p in sorted(result.points, key=lambda p: p.concurrency):
        cpu = "n/a" if math.isnan(p.client_cpu_us_per_token) else f"{p.client_cpu_us_per_token:.1f}"
        print(
            f"{p.concurrency:>11}  {p.offered_tokens_per_second:>13.0f}  "
            f"{p.consumed_tokens_per_second:>14.0f}  {p.client_tokens_per_second:>14.0f}  "
            f"{p.server_gap_ms:>13.2f}  "
            f"{p.measured_gap_ms_mean:>11.2f}  {p.measured_gap_ms_median:>6.2f}  "
            f"{p.kept_up!s:>7}  {cpu:>19}" + (f"  {p.note}" if p.note else "")
        )
    cpu_costs = [
        p.client_cpu_us_per_token
        for p in result.points
        if p.errors == 0 and not math.isnan(p.client_cpu_us_per_token)
    ]
    if cpu_costs:
        per_token = statistics.median(cpu_costs)
        print(
            f"client CPU per token: {per_token:.1f} us (median over points), so a dedicated "
            f"core would allow about {1e6 / per_token:.0f} tok/s"
        )
    if result.best:
        print(f"best point: {asdict(result.best)}")
    print()


def _cores(result: CapacityResult) -> str:
    return f"cpu {result.cpus[0]}" if len(result.cpus) == 1 else "unpinned cpus"


@contextmanager
def _pinned_fake_server(
    gap_s: float, max_concurrency: int
) -> Iterator[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """The fake server on every core but the first, this process (and so the peer it starts,
    which inherits its affinity) on the first; yields the URL, client and server cores. Where
    there is one core, or affinity cannot be set, nobody is pinned. The affinity is restored
    afterwards."""
    config = FakeServerConfig(
        model=MODEL, ttft_s=gap_s, gap_s=gap_s, batch_limit=max_concurrency * 2
    )
    cpus = _cpus()
    pin = len(cpus) > 1
    client_cpus = (cpus[0],) if pin else ()
    server_cpus = tuple(cpus[1:]) if pin else ()
    with fake_server_process(config, cpus=set(server_cpus) or None) as url:
        if pin:
            os.sched_setaffinity(0, client_cpus)
        try:
            yield url, client_cpus, server_cpus
        finally:
            if pin:
                os.sched_setaffinity(0, cpus)


def _best_and_points(
    points: Sequence[CapacityPoint],
) -> tuple[CapacityPoint | None, tuple[CapacityPoint, ...]]:
    kept = [p for p in points if p.kept_up]
    best = max(kept, key=lambda p: p.consumed_tokens_per_second) if kept else None
    return best, tuple(points)


def _harness_point(
    url: str, concurrency: int, gap_s: float, output_tokens: int, waves: int
) -> CapacityPoint:
    before = len(_streams(url))
    cpu_s = 0.0

    async def run() -> tuple[list[RequestResult], float]:
        nonlocal cpu_s
        results: list[RequestResult] = []
        async with closed_loop_pool(concurrency) as pool:
            await pool.warm(url, concurrency)
            cpu_started = time.process_time()
            duration = await run_closed_loop(
                pool,
                Target(url, MODEL, 600.0),
                make_requests(
                    fixed_workload(INPUT_TOKENS, output_tokens, api="completions"),
                    concurrency * waves,
                ),
                concurrency=concurrency,
                results=results,
            )
            cpu_s = time.process_time() - cpu_started
        return results, duration

    results, duration = asyncio.run(run())
    point = summarize(results, duration, concurrency=concurrency)
    gaps = [gap for r in results if r.ok for gap in r.itl_s]
    return _judge(
        concurrency,
        gap_s,
        _streams(url)[before:],
        client_tokens_per_second=point.output_tokens_per_second,
        mean_gap_s=statistics.mean(gaps) if gaps else math.inf,
        median_gap_s=statistics.median(gaps) if gaps else math.inf,
        errors=point.errors,
        client_cpu_us_per_token=cpu_s / max(point.output_tokens, 1) * 1e6,
    )


def _peer_point(
    env: VllmCpuEnv,
    url: str,
    concurrency: int,
    gap_s: float,
    output_tokens: int,
    waves: int,
    scratch: Path,
) -> CapacityPoint:
    requests = concurrency * waves
    before = len(_streams(url))
    try:
        result = run_vllm_bench_serve(
            env.vllm_command,
            base_url=url,
            model=MODEL,
            tokenizer=str(env.model_dir),
            workload=PeerWorkload(INPUT_TOKENS, output_tokens, requests, concurrency),
            result_path=scratch / f"peer-{concurrency}.json",
            env={"VLLM_TARGET_DEVICE": "cpu"},
            timeout_s=300.0,
        )
    except PeerError as error:
        return CapacityPoint(
            concurrency=concurrency,
            offered_tokens_per_second=concurrency / gap_s,
            consumed_tokens_per_second=0.0,
            client_tokens_per_second=0.0,
            server_gap_ms=math.nan,
            measured_gap_ms_mean=math.nan,
            measured_gap_ms_median=math.nan,
            errors=requests,
            kept_up=False,
            client_cpu_us_per_token=math.nan,
            note=str(error),
        )
    completed = int(result.get("completed", 0))
    # A test request the peer may send before its main run finishes before that run starts;
    # the last `completed` streams are the main run's (nothing else talks to the server).
    streams = _streams(url)[before:][-completed:] if completed else []
    return _judge(
        concurrency,
        gap_s,
        streams,
        client_tokens_per_second=float(result["output_throughput"]),
        mean_gap_s=float(result["mean_itl_ms"]) / 1000,
        median_gap_s=float(result["median_itl_ms"]) / 1000,
        errors=requests - completed + int(result.get("failed", 0)),
        client_cpu_us_per_token=math.nan,
    )


def _judge(
    concurrency: int,
    gap_s: float,
    streams: list[dict[str, Any]],
    *,
    client_tokens_per_second: float,
    mean_gap_s: float,
    median_gap_s: float,
    errors: int,
    client_cpu_us_per_token: float,
) -> CapacityPoint:
    """The point, kept up with when error-free and both measured gaps are within
    MAX_GAP_ERROR_S of the mean gap the server produced for these streams."""
    multi = [s for s in streams if s["tokens"] > 1]
    server_gap = (
        statistics.mean(s["decode_s"] / (s["tokens"] - 1) for s in multi) if multi else math.nan
    )
    kept_up = (
        errors == 0
        and bool(multi)
        and abs(mean_gap_s - server_gap) <= MAX_GAP_ERROR_S
        and abs(median_gap_s - server_gap) <= MAX_GAP_ERROR_S
    )
    return CapacityPoint(
        concurrency=concurrency,
        offered_tokens_per_second=concurrency / gap_s,
        consumed_tokens_per_second=_server_rate(streams),
        client_tokens_per_second=client_tokens_per_second,
        server_gap_ms=server_gap * 1000,
        measured_gap_ms_mean=mean_gap_s * 1000,
        measured_gap_ms_median=median_gap_s * 1000,
        errors=errors,
        kept_up=kept_up,
        client_cpu_us_per_token=client_cpu_us_per_token,
    )


def _server_rate(streams: list[dict[str, Any]]) -> float:
    if not streams:
        return 0.0
    span_s = max(s["finished_at"] for s in streams) - min(s["arrived_at"] for s in streams)
    return sum(s["tokens"] for s in streams) / span_s if span_s > 0 else 0.0


def _streams(url: str) -> list[dict[str, Any]]:
    streams: list[dict[str, Any]] = httpx.get(url + "/fake/stats", timeout=60).json()["streams"]
    return streams


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


if __name__ == "__main__":
    main()
