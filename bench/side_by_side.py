"""The harness and `vllm bench serve` measuring one server, taking turns.

Each client runs the same workload against the same server, one after the other in ABBA order
(harness, peer, peer, harness, ...) so that a steady drift of the machine's speed affects both
alike; each run draws fresh prompts (its own seed), so the server's prefix cache never serves
one run's prompts to the next; the ratios are of the means over all runs.

Measured on a shared 2-core machine (load average 7 to 20 from other work), and why it is
done this way:
- Turns are noisy there: one client's output tok/s varied up to 2.5x between runs at normal
  priority; with the server and both clients at nice -10 or -20, about +-10%.
- Both clients at once (each at half the concurrency) share every engine step, so tok/s and
  TPOT agreed within 1-6% whatever the load; but with fixed lengths each client's requests
  move in lockstep, and the time to first token then depends on how the two cohorts line up
  (a step is about 100 ms of a 400 ms TTFT): started together, the client quicker to send
  after a finished request won the race for the next step (harness TTFT 0.71x the peer's);
  started half a request apart, the ratio was 0.90 at 32 output tokens and 1.11 at 16.
  Poisson arrivals on both sides removed the lockstep but made TPOT per run too noisy.
Taking turns is the one way without a bias of its own; its noise is the machine's.

Output lengths should vary (``PeerWorkload.output_range_ratio``). With one fixed length, the
requests of a closed loop finish in the same engine step, the engine falls idle, and the next
wave's time to first token turns on a race far below a millisecond: whether all of a client's
new requests reach the engine before it starts a step for the first one alone. Measured here
with the server sharing its core with an equal-priority process (half a core, as on a busy CI
machine), three rounds per client:
- one fixed length (32): TTFT ratios 1.003 and 0.956, single rounds 0.92 to 1.07, mean TTFT
  1,130 ms; one CI run measured 0.87 in all three rounds;
- 16 to 48 (mean 32): 1.022 and 0.990 at 640 ms, since each new request joins a running batch
  at the next step; but the whole-run tok/s then depends on the longest draws at the drain
  (ratios 0.998 and 1.068);
- 24 to 40, four rounds per client: TTFT 1.017 and 1.002, tok/s 1.002 and 1.013, TPOT 0.995
  and 0.987. Single rounds still range 0.89 to 1.20 in TTFT, hence four rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench.loadgen import Target
from bench.peer import PeerFigures, PeerWorkload, peer_figures, run_vllm_bench_serve
from bench.sweep import Slo, SweepOptions, run_sweep
from bench.workloads import output_range_workload

FIGURES = ("output_tokens_per_second", "ttft_ms_mean", "tpot_ms_mean")


@dataclass(frozen=True)
class SideBySide:
    """Per round, the harness's and the peer's figures; ratios are of the means over rounds."""

    workload: PeerWorkload
    harness: list[PeerFigures]
    peer: list[PeerFigures]
    peer_result_paths: list[Path]
    #: Mean prompt tokens per request as the server counted them (usage), for each side.
    harness_prompt_tokens_mean: float
    peer_prompt_tokens_mean: float

    def mean(self, side: str, figure: str) -> float:
        runs = self.harness if side == "harness" else self.peer
        return sum(float(getattr(run, figure)) for run in runs) / len(runs)

    def ratio(self, figure: str) -> float:
        """harness / peer for one figure (output_tokens_per_second, ttft_ms_mean, ...)."""
        return self.mean("harness", figure) / self.mean("peer", figure)

    def report(self) -> str:
        """A few lines for people: each figure's means, ratio and every round."""
        lines = [
            f"prompt tokens per request (server's count): harness "
            f"{self.harness_prompt_tokens_mean:.1f}, peer {self.peer_prompt_tokens_mean:.1f}"
        ]
        for figure in FIGURES:
            rounds = ", ".join(
                f"{getattr(h, figure):.1f}/{getattr(p, figure):.1f}"
                for h, p in zip(self.harness, self.peer, strict=True)
            )
            lines.append(
                f"{figure}: harness {self.mean('harness', figure):.1f}, peer "
                f"{self.mean('peer', figure):.1f}, ratio {self.ratio(figure):.3f} "
                f"(rounds harness/peer: {rounds})"
            )
        return "\n".join(lines)


def side_by_side(
    vllm_command: Path | str,
    *,
    base_url: str,
    model: str,
    tokenizer: str,
    workload: PeerWorkload,
    result_dir: Path,
    rounds: int = 3,
    env: dict[str, str] | None = None,
    nice: int | None = None,
) -> SideBySide:
    """``rounds`` runs of each client on one server, one after the other, ABBA-interleaved.

    A short untimed harness run warms the server first. ``nice`` gives both clients the same
    scheduling priority (as root; else unchanged).
    """
    harness: list[PeerFigures] = []
    peer: list[PeerFigures] = []
    paths: list[Path] = []
    harness_prompt: list[float] = []
    peer_prompt: list[float] = []
    order: list[str] = []
    for round_index in range(rounds):
        order += ["harness", "peer"] if round_index % 2 == 0 else ["peer", "harness"]
    with _priority(nice):
        _harness_point(base_url, model, _warm_up(workload), seed=999)
    for index, side in enumerate(order):
        seed = 1000 + index
        if side == "harness":
            with _priority(nice):
                figures, prompt_mean = _harness_point(base_url, model, workload, seed=seed)
            harness.append(figures)
            harness_prompt.append(prompt_mean)
            continue
        path = result_dir / f"peer-{index}.json"
        result = run_vllm_bench_serve(
            vllm_command,
            base_url=base_url,
            model=model,
            tokenizer=tokenizer,
            workload=replace(workload, seed=seed),
            result_path=path,
            env=env,
            nice=nice,
        )
        peer.append(peer_figures(result))
        paths.append(path)
        peer_prompt.append(result["total_input_tokens"] / max(int(result["completed"]), 1))
    return SideBySide(
        workload,
        harness,
        peer,
        paths,
        sum(harness_prompt) / len(harness_prompt),
        sum(peer_prompt) / len(peer_prompt),
    )


def _harness_point(
    base_url: str, model: str, workload: PeerWorkload, *, seed: int
) -> tuple[PeerFigures, float]:
    """One point of the harness: at the workload's request rate (open loop) when it has one,
    else at its concurrency (closed loop)."""
    rate = workload.request_rate
    options = SweepOptions(
        mode="rate" if rate else "concurrency",
        start_concurrency=workload.max_concurrency,
        max_concurrency=workload.max_concurrency,
        start_rate=rate or 1.0,
        max_rate=rate or 1.0,
        requests_per_point=workload.num_prompts,
        min_waves=1,
        # Exactly the peer's request count: the two compare by whole-run figures.
        min_window_requests=0,
        seed=seed,
    )
    # No latency bound: one point at exactly this concurrency, whatever its latencies.
    slo = Slo(ttft_p95_ms=float("inf"), tpot_p95_ms=float("inf"), max_error_rate=1.0)
    state = asyncio.run(
        run_sweep(
            Target(base_url, model, 600.0),
            output_range_workload(
                workload.input_tokens, workload.output_lengths(), api=workload.api
            ),
            slo,
            options,
        )
    )
    point = state.points[0]
    completed = point.requests - point.errors
    figures = PeerFigures(
        output_tokens_per_second=point.output_tokens_per_second,
        ttft_ms_mean=point.latency_ms.get("ttft_ms_mean", float("nan")),
        tpot_ms_mean=point.latency_ms.get("tpot_ms_mean", float("nan")),
        completed=completed,
        failed=point.errors,
    )
    return figures, point.input_tokens / max(completed, 1)


def _warm_up(workload: PeerWorkload) -> PeerWorkload:
    return PeerWorkload(
        workload.input_tokens,
        min(workload.output_tokens, 8),
        workload.max_concurrency,
        workload.max_concurrency,
        workload.api,
    )


@contextlib.contextmanager
def _priority(nice: int | None) -> Iterator[None]:
    """Run this process at ``nice`` for the block (as root; else unchanged), then restore."""
    if nice is None:
        yield
        return
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    try:
        yield
    finally:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, before)
