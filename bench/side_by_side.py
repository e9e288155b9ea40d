"""The harness and `vllm bench serve` measuring one server at the same time.

Both clients run the same workload against the same server *at once*, each at the workload's
concurrency, so that the server batches their requests together and every step it takes is
shared: whatever else the machine is doing slows both sides alike, and their figures stay
comparable even on a busy machine (run one after the other on a shared 2-core machine, the
same client's output tok/s varied by up to 2.5x between runs).

The peer starts first (its imports take seconds); the harness starts half a request after the
peer's main run has begun (see _wait_for_generated_tokens). Each round draws fresh prompts for
both (their own seeds), so the server's prefix cache never serves one round's prompts to the
next.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.loadgen import Target
from bench.peer import PeerFigures, PeerWorkload, peer_figures, start_vllm_bench_serve
from bench.sweep import Slo, SweepOptions, run_sweep
from bench.workloads import fixed_workload

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
    rounds: int = 1,
    env: dict[str, str] | None = None,
    nice: int | None = None,
) -> SideBySide:
    """Run ``rounds`` rounds of the harness and the peer at once on one server.

    A short untimed harness run warms the server first. ``nice`` gives both clients the same
    scheduling priority (as root; else unchanged).
    """
    harness: list[PeerFigures] = []
    peer: list[PeerFigures] = []
    paths: list[Path] = []
    harness_prompt: list[float] = []
    peer_prompt: list[float] = []
    with _priority(nice):
        _harness_point(base_url, model, _warm_up(workload), seed=999)
    for round_index in range(rounds):
        path = result_dir / f"peer-{round_index}.json"
        run = start_vllm_bench_serve(
            vllm_command,
            base_url=base_url,
            model=model,
            tokenizer=tokenizer,
            workload=PeerWorkload(
                workload.input_tokens,
                workload.output_tokens,
                workload.num_prompts,
                workload.max_concurrency,
                workload.api,
                seed=2000 + round_index,
            ),
            result_path=path,
            env=env,
            nice=nice,
        )
        try:
            run.wait_until_sending()
            _wait_for_generated_tokens(
                base_url, workload.max_concurrency * workload.output_tokens // 2
            )
            with _priority(nice):
                figures, prompt_mean = _harness_point(
                    base_url, model, workload, seed=1000 + round_index
                )
            result = run.result()
        finally:
            run.stop()
        harness.append(figures)
        harness_prompt.append(prompt_mean)
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
    """One closed-loop point of the harness at the workload's concurrency."""
    options = SweepOptions(
        start_concurrency=workload.max_concurrency,
        max_concurrency=workload.max_concurrency,
        requests_per_point=workload.num_prompts,
        min_waves=1,
        seed=seed,
    )
    # No latency bound: one point at exactly this concurrency, whatever its latencies.
    slo = Slo(ttft_p95_ms=float("inf"), tpot_p95_ms=float("inf"), max_error_rate=1.0)
    state = asyncio.run(
        run_sweep(
            Target(base_url, model, 600.0),
            fixed_workload(workload.input_tokens, workload.output_tokens, api=workload.api),
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


def _wait_for_generated_tokens(base_url: str, tokens: int, *, timeout_s: float = 300.0) -> None:
    """Wait until the server has generated ``tokens`` more output tokens (its /metrics counter).

    Started half a request after the peer, the harness's requests finish while the peer's are
    mid-way and the other way round, so neither client's new requests win the race for the
    next engine step: started together, the client quicker to react after a finished request
    (the harness) saw a time to first token about 30% shorter than the peer's.
    """
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10.0) as client:
        start = _generated_tokens(client, base_url)
        if start is None:
            return
        while time.monotonic() < deadline:
            now = _generated_tokens(client, base_url)
            if now is None or now - start >= tokens:
                return
            time.sleep(0.02)


def _generated_tokens(client: httpx.Client, base_url: str) -> float | None:
    try:
        text = client.get(base_url.rstrip("/") + "/metrics").text
    except httpx.HTTPError:
        return None
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("vllm:generation_tokens_total"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


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
