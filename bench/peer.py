"""vLLM's own benchmark client (`vllm bench serve`), run as the peer the harness is checked against.

The peer runs in the vLLM environment (the CPU cache's venv, or the project's when the GPU build
is installed) as a subprocess; this module only builds its command line and reads the result
JSON it writes (benchmark_serving's keys: ``output_throughput``, ``mean_ttft_ms``, ...).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from oracle.errors import OracleError

Api = Literal["chat", "completions"]

#: What `vllm bench serve` prints when its measured run begins (vllm/benchmarks/serve.py).
MAIN_RUN_MARKER = "Starting main benchmark run"


class PeerError(OracleError):
    """`vllm bench serve` failed or wrote no result; the message ends with its output's tail."""


@dataclass(frozen=True)
class PeerWorkload:
    """``num_prompts`` requests, at most ``max_concurrency`` at once, sent as fast as that allows
    (closed loop) or, with ``request_rate``, at Poisson arrivals of that rate.

    Prompts have exactly ``input_tokens``. Outputs have exactly ``output_tokens``, or with
    ``output_range_ratio`` r > 0 a length drawn uniformly from the integers in
    [floor(L(1 - r)), ceil(L(1 + r))] (at least 1), as `vllm bench serve`'s random dataset draws
    them (vllm/benchmarks/datasets/utils.py, ``get_sampling_params``).
    """

    input_tokens: int
    output_tokens: int
    num_prompts: int
    max_concurrency: int
    api: Api = "completions"
    seed: int = 0
    request_rate: float | None = None
    output_range_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.output_range_ratio < 1:
            raise ValueError(
                f"output range ratio {self.output_range_ratio:g}: it must be at least 0 and "
                "below 1 (vllm bench serve's bounds)"
            )

    def output_lengths(self) -> range:
        """Every output length a request may get (one length when the ratio is 0)."""
        low = math.floor(self.output_tokens * (1 - self.output_range_ratio))
        high = math.ceil(self.output_tokens * (1 + self.output_range_ratio))
        return range(max(low, 1), max(high, 1) + 1)


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
    """The `vllm bench serve` command line for ``workload`` (random prompts of exact length;
    outputs of exact length or drawn from :meth:`PeerWorkload.output_lengths`)."""
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
        # Lengths as the harness sends them (exact prompts, ignore_eos, greedy).
        "--random-range-ratio",
        json.dumps({"input": 0, "output": workload.output_range_ratio})
        if workload.output_range_ratio
        else "0",
        "--ignore-eos",
        "--temperature",
        "0",
        "--num-prompts",
        str(workload.num_prompts),
        "--max-concurrency",
        str(workload.max_concurrency),
        *(["--request-rate", f"{workload.request_rate:g}"] if workload.request_rate else []),
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


class PeerRun:
    """A started `vllm bench serve`: ``wait_until_sending()`` returns once its main run has
    begun (after its imports and its one-prompt test run), ``result()`` waits for the end."""

    def __init__(self, process: subprocess.Popen[str], result_path: Path, timeout_s: float):
        self.process = process
        self.result_path = result_path
        self._deadline = time.monotonic() + timeout_s
        self._lines: list[str] = []
        self._sending = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def wait_until_sending(self) -> None:
        while not self._sending.wait(0.05):
            if self.process.poll() is not None:
                self._reader.join(5)
                self._fail("ended before its main run")
            if time.monotonic() > self._deadline:
                self._fail("did not start its main run in time")

    def result(self) -> dict[str, Any]:
        try:
            code = self.process.wait(timeout=max(1.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._fail("did not finish in time")
        self._reader.join(5)
        if code != 0 or not self.result_path.is_file():
            self._fail(f"failed (exit {code})")
        result: dict[str, Any] = json.loads(self.result_path.read_text())
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines = [*self._lines[-39:], line.rstrip("\n")]
            if MAIN_RUN_MARKER in line:
                self._sending.set()

    def _fail(self, what: str) -> NoReturn:
        self.stop()
        tail = " | ".join(line for line in self._lines[-6:] if line.strip())
        raise PeerError(f"`vllm bench serve` {what}; last lines: {tail or '(none)'}")


def start_vllm_bench_serve(
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
) -> PeerRun:
    """Start the peer against ``base_url`` (its result JSON goes to ``result_path``)."""
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
    # Unbuffered: its "Starting main benchmark run" line must arrive when it is printed.
    full_env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    process = subprocess.Popen(
        argv,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=result_path.parent,
        preexec_fn=None if nice is None else (lambda: _set_priority(nice)),
    )
    return PeerRun(process, result_path, timeout_s)


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
    """Run the peer to the end and return its result JSON (also left at result_path)."""
    run = start_vllm_bench_serve(
        vllm_command,
        base_url=base_url,
        model=model,
        tokenizer=tokenizer,
        workload=workload,
        result_path=result_path,
        env=env,
        timeout_s=timeout_s,
        nice=nice,
    )
    try:
        return run.result()
    finally:
        run.stop()


def peer_figures(result: dict[str, Any]) -> PeerFigures:
    """The compared figures from a benchmark_serving result dict."""
    return PeerFigures(
        output_tokens_per_second=float(result["output_throughput"]),
        ttft_ms_mean=float(result["mean_ttft_ms"]),
        tpot_ms_mean=float(result["mean_tpot_ms"]),
        completed=int(result.get("completed", 0)),
        failed=int(result.get("failed", 0)),
    )


def _set_priority(nice: int) -> None:
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
