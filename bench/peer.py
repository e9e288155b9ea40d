"""vLLM's own benchmark client (`vllm bench serve`), run as the peer the harness is checked against.

The peer runs in the vLLM environment (the CPU cache's venv, or the project's when the GPU build
is installed) as a subprocess; this module only builds its command line and reads the result
JSON it writes (benchmark_serving's keys: ``output_throughput``, ``mean_ttft_ms``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.loadgen import Target
from bench.sweep import Slo, SweepOptions, run_sweep
from bench.workloads import fixed_workload
from oracle.errors import OracleError

Api = Literal["chat", "completions"]


class PeerError(OracleError):
    """`vllm bench serve` failed or wrote no result; the message ends with its output's tail."""


@dataclass(frozen=True)
class PeerWorkload:
    """Fixed lengths, closed loop: ``num_prompts`` requests at most ``max_concurrency`` at once."""

    input_tokens: int
    output_tokens: int
    num_prompts: int
    max_concurrency: int
    api: Api = "completions"
    seed: int = 0


@dataclass(frozen=True)
class PeerFigures:
    """The figures the harness is compared on, read from the peer's result file."""

    output_tokens_per_second: float
    ttft_ms_mean: float
    tpot_ms_mean: float
    completed: int
    failed: int


def bench_serve_argv(
    vllm_command: Path | str,
    *,
    base_url: str,
    model: str,
    tokenizer: str,
    workload: PeerWorkload,
    result_path: Path,
) -> list[str]:
    """The `vllm bench serve` command line for ``workload`` (random prompts, exact lengths)."""
    backend, endpoint = (
        ("openai-chat", "/v1/chat/completions")
        if workload.api == "chat"
        else ("openai", "/v1/completions")
    )
    return [
        str(vllm_command),
        "bench",
        "serve",
        "--backend",
        backend,
        "--endpoint",
        endpoint,
        "--base-url",
        base_url,
        "--model",
        model,
        "--tokenizer",
        tokenizer,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(workload.input_tokens),
        "--random-output-len",
        str(workload.output_tokens),
        # Exact lengths, as the harness sends them (range ratio 0, ignore_eos, greedy).
        "--random-range-ratio",
        "0",
        "--ignore-eos",
        "--temperature",
        "0",
        "--num-prompts",
        str(workload.num_prompts),
        "--max-concurrency",
        str(workload.max_concurrency),
        "--seed",
        str(workload.seed),
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,90,95,99",
        "--disable-tqdm",
        "--save-result",
        "--result-dir",
        str(result_path.parent),
        "--result-filename",
        result_path.name,
    ]


def run_vllm_bench_serve(
    vllm_command: Path | str,
    *,
    base_url: str,
    model: str,
    tokenizer: str,
    workload: PeerWorkload,
    result_path: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 600.0,
    nice: int | None = None,
) -> dict[str, Any]:
    """Run the peer against ``base_url`` and return its result JSON (also left at result_path)."""
    argv = bench_serve_argv(
        vllm_command,
        base_url=base_url,
        model=model,
        tokenizer=tokenizer,
        workload=workload,
        result_path=result_path,
    )
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    full_env = dict(os.environ)
    for key in ("VIRTUAL_ENV", "PYTHONPATH"):
        full_env.pop(key, None)
    full_env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})})
    try:
        completed = subprocess.run(
            argv,
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=result_path.parent,
            preexec_fn=None if nice is None else (lambda: _set_priority(nice)),
        )
    except subprocess.TimeoutExpired as error:
        raise PeerError(f"`vllm bench serve` did not finish within {timeout_s:.0f} s") from error
    output_tail = " | ".join((completed.stdout + completed.stderr).strip().splitlines()[-6:])
    if completed.returncode != 0 or not result_path.is_file():
        raise PeerError(
            f"`vllm bench serve` failed (exit {completed.returncode}); last lines: {output_tail}"
        )
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def peer_figures(result: dict[str, Any]) -> PeerFigures:
    """The compared figures from a benchmark_serving result dict."""
    return PeerFigures(
        output_tokens_per_second=float(result["output_throughput"]),
        ttft_ms_mean=float(result["mean_ttft_ms"]),
        tpot_ms_mean=float(result["mean_tpot_ms"]),
        completed=int(result.get("completed", 0)),
        failed=int(result.get("failed", 0)),
    )


@dataclass(frozen=True)
class SideBySide:
    """The harness and the peer, each run ``repeats`` times on one server, interleaved ABBA."""

    workload: PeerWorkload
    harness: list[PeerFigures]
    peer: list[PeerFigures]
    peer_result_paths: list[Path]
    #: Mean prompt tokens per request as the server counted them (usage), for each side.
    harness_prompt_tokens_mean: float
    peer_prompt_tokens_mean: float

    def runs(self, side: str) -> list[PeerFigures]:
        return self.harness if side == "harness" else self.peer

    def mean(self, side: str, figure: str) -> float:
        runs = self.runs(side)
        return sum(float(getattr(run, figure)) for run in runs) / len(runs)

    def best(self, side: str) -> PeerFigures:
        """The side's least disturbed run: the one with the highest output tok/s.

        Other work on the machine can only slow a run down, never speed it up, so the fastest
        run of each side is the fairest pair to compare (all three figures from that run).
        """
        return max(self.runs(side), key=lambda run: run.output_tokens_per_second)

    def ratio(self, figure: str, *, how: str = "best") -> float:
        """harness / peer for one figure (output_tokens_per_second, ttft_ms_mean, ...), from
        each side's best run (``how="best"``) or the means of all its runs (``"mean"``)."""
        if how == "mean":
            return self.mean("harness", figure) / self.mean("peer", figure)
        harness = float(getattr(self.best("harness"), figure))
        return harness / float(getattr(self.best("peer"), figure))


def side_by_side(
    vllm_command: Path | str,
    *,
    base_url: str,
    model: str,
    tokenizer: str,
    workload: PeerWorkload,
    result_dir: Path,
    repeats: int = 2,
    env: dict[str, str] | None = None,
    nice: int | None = None,
) -> SideBySide:
    """Run the harness and `vllm bench serve` on the same server and workload.

    Order harness, peer, peer, harness (ABBA) so that a steady drift of the machine's speed
    affects both sides alike; every run draws different prompts (its own seed), so the server's
    prefix cache never serves one run's prompts to the next. A short untimed harness run warms
    the server first. ``nice`` gives both clients the same scheduling priority (the server's,
    when it was started with one), so that other work on a shared machine delays neither.
    """
    harness: list[PeerFigures] = []
    peer: list[PeerFigures] = []
    paths: list[Path] = []
    harness_prompt: list[float] = []
    peer_prompt: list[float] = []
    order: list[str] = []
    for repeat in range(repeats):
        order += ["harness", "peer"] if repeat % 2 == 0 else ["peer", "harness"]
    with _priority(nice):
        _harness_point(base_url, model, _warm_up(workload), seed=999)
    for index, side in enumerate(order):
        seed = 1000 + index
        if side == "harness":
            with _priority(nice):
                figures, prompt_mean = _harness_point(base_url, model, workload, seed)
            harness.append(figures)
            harness_prompt.append(prompt_mean)
        else:
            path = result_dir / f"peer-{index}.json"
            result = run_vllm_bench_serve(
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
                    seed,
                ),
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
    base_url: str, model: str, workload: PeerWorkload, seed: int
) -> tuple[PeerFigures, float]:
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
    _set_priority(nice)
    try:
        yield
    finally:
        _set_priority(before)


def _set_priority(nice: int) -> None:
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
