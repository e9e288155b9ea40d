"""vLLM's own benchmark client (`vllm bench serve`), run as the peer the harness is checked against.

The peer runs in the vLLM environment (the CPU cache's venv, or the project's when the GPU build
is installed) as a subprocess; this module only builds its command line and reads the result
JSON it writes (benchmark_serving's keys: ``output_throughput``, ``mean_ttft_ms``, ...).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
