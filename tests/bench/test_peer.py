"""The `vllm bench serve` runner, with stand-in commands that take the same arguments (the real
peer runs in the real tier, tests/bench/test_real_vllm.py)."""

from __future__ import annotations

import json
import stat
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.peer import (
    MAIN_RUN_MARKER,
    PeerError,
    PeerWorkload,
    bench_serve_argv,
    peer_figures,
    run_vllm_bench_serve,
    start_vllm_bench_serve,
)
from bench.workloads import fixed_workload, make_requests, output_range_workload
from benchmarks import harness_real

FIXTURE_RESULT = Path(__file__).parent / "fixtures" / "vllm" / "bench_serve_result.json"
WORKLOAD = PeerWorkload(
    input_tokens=64, output_tokens=32, num_prompts=16, max_concurrency=4, api="chat"
)


def _stand_in(tmp_path: Path, body: str) -> Path:
    """An executable that parses the peer's options as `vllm bench serve` would, then runs body."""
    script = tmp_path / "vllm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, time\n"
        "args = sys.argv[1:]\n"
        "opt = lambda name: args[args.index(name) + 1]\n" + body
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_argv_fixes_lengths_and_concurrency_and_picks_the_chat_backend(tmp_path: Path) -> None:
    argv = bench_serve_argv(
        "vllm",
        base_url="http://127.0.0.1:8000",
        model="smollm2",
        tokenizer="/models/smollm2",
        workload=WORKLOAD,
        result_path=tmp_path / "r.json",
    )

    def option(name: str) -> str:
        return argv[argv.index(name) + 1]

    assert argv[:3] == ["vllm", "bench", "serve"]
    assert option("--backend") == "openai-chat"
    assert option("--endpoint") == "/v1/chat/completions"
    assert option("--random-input-len") == "64"
    assert option("--random-output-len") == "32"
    assert option("--random-range-ratio") == "0"
    assert option("--num-prompts") == "16"
    assert option("--max-concurrency") == "4"
    assert "--ignore-eos" in argv
    assert option("--result-dir") == str(tmp_path)
    assert option("--result-filename") == "r.json"
    assert "--request-rate" not in argv  # closed loop: as fast as the concurrency allows


def test_argv_with_a_request_rate_sends_poisson_arrivals(tmp_path: Path) -> None:
    workload = PeerWorkload(64, 8, 48, 64, "completions", request_rate=1.5)
    argv = _argv(workload, tmp_path)
    assert argv[argv.index("--request-rate") + 1] == "1.5"
    assert argv[argv.index("--backend") + 1] == "openai"
    assert argv[argv.index("--endpoint") + 1] == "/v1/completions"


def test_an_output_range_reaches_the_peer_and_the_harness_alike(tmp_path: Path) -> None:
    workload = PeerWorkload(64, 32, 24, 4, "completions", output_range_ratio=0.5)
    argv = _argv(workload, tmp_path)
    # The peer: exact prompts, outputs within +-50% of 32 (vLLM's dict form of the option).
    assert json.loads(argv[argv.index("--random-range-ratio") + 1]) == {"input": 0, "output": 0.5}
    assert workload.output_lengths() == range(16, 49)
    # The harness: the same lengths, each about equally often, prompts exact.
    requests = make_requests(
        output_range_workload(64, workload.output_lengths(), api="completions"), 3300, seed=7
    )
    counts = Counter(request.output_tokens for request in requests)
    assert sorted(counts) == list(range(16, 49))
    assert min(counts.values()) > 50  # 100 expected each
    assert {request.input_tokens for request in requests} == {64}
    # Without a ratio both sides keep one exact length.
    assert WORKLOAD.output_lengths() == range(32, 33)
    assert output_range_workload(64, range(32, 33)).shapes == fixed_workload(64, 32).shapes


@pytest.mark.parametrize("ratio", [-0.1, 1.0])
def test_an_output_range_outside_vllms_bounds_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="at least 0 and below 1"):
        PeerWorkload(64, 32, 24, 4, output_range_ratio=ratio)


def test_harness_real_refuses_a_bad_range_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        harness_real.main(["--output-range-ratio", "1.5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--output-range-ratio: output range ratio 1.5" in err
    assert "Traceback" not in err


def _argv(workload: PeerWorkload, tmp_path: Path) -> list[str]:
    return bench_serve_argv(
        "vllm",
        base_url="http://127.0.0.1:8000",
        model="m",
        tokenizer="t",
        workload=workload,
        result_path=tmp_path / "r.json",
    )


def test_run_returns_the_result_file_it_wrote(tmp_path: Path) -> None:
    command = _stand_in(
        tmp_path,
        f"print({MAIN_RUN_MARKER!r} + '...')\n"
        f"data = json.load(open({str(FIXTURE_RESULT)!r}))\n"
        "data['max_concurrency'] = int(opt('--max-concurrency'))\n"
        "json.dump(data, open(opt('--result-dir') + '/' + opt('--result-filename'), 'w'))\n",
    )
    result = run_vllm_bench_serve(
        command,
        base_url="http://127.0.0.1:1",
        model="smollm2",
        tokenizer="tok",
        workload=WORKLOAD,
        result_path=tmp_path / "out" / "result.json",
    )
    assert result["max_concurrency"] == 4
    figures = peer_figures(result)
    expected = json.loads(FIXTURE_RESULT.read_text())
    assert figures.output_tokens_per_second == expected["output_throughput"]
    assert figures.ttft_ms_mean == expected["mean_ttft_ms"]
    assert figures.tpot_ms_mean == expected["mean_tpot_ms"]


def test_wait_until_sending_returns_at_the_marker_not_at_the_end(tmp_path: Path) -> None:
    command = _stand_in(
        tmp_path,
        f"print('loading tokenizer'); print({MAIN_RUN_MARKER!r} + '...')\ntime.sleep(30)\n",
    )
    run = start_vllm_bench_serve(
        command,
        base_url="http://127.0.0.1:1",
        model="m",
        tokenizer="t",
        workload=WORKLOAD,
        result_path=tmp_path / "result.json",
        timeout_s=60,
    )
    try:
        run.wait_until_sending()
        assert run.process.poll() is None  # still "measuring"
    finally:
        run.stop()
    assert run.process.poll() is not None


def test_a_peer_that_fails_before_its_main_run_is_reported_with_its_output(
    tmp_path: Path,
) -> None:
    command = _stand_in(
        tmp_path, "print('ValueError: tokenizer not found: tok', flush=True)\nsys.exit(1)\n"
    )
    run = start_vllm_bench_serve(
        command,
        base_url="http://127.0.0.1:1",
        model="m",
        tokenizer="tok",
        workload=WORKLOAD,
        result_path=tmp_path / "result.json",
        timeout_s=60,
    )
    with pytest.raises(PeerError) as caught:
        run.wait_until_sending()
    assert "ended before its main run" in str(caught.value)
    assert "tokenizer not found" in str(caught.value)


def test_a_peer_that_writes_no_result_fails_clearly(tmp_path: Path) -> None:
    command = _stand_in(tmp_path, f"print({MAIN_RUN_MARKER!r})\n")
    with pytest.raises(PeerError, match=r"failed \(exit 0\)"):
        run_vllm_bench_serve(
            command,
            base_url="http://127.0.0.1:1",
            model="m",
            tokenizer="t",
            workload=WORKLOAD,
            result_path=tmp_path / "result.json",
        )
