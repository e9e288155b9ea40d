"""A load-following SLO: the fleet's generated-token rate, from the replicas' vLLM /metrics.

``vllm:generation_tokens_total`` is a counter; the rate is its growth between two scrapes.
The SLO follows rate x (1 + headroom) within [min, max], and only after it has stayed above
(below) the current SLO for the scale-up (scale-down) delay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from scheduler.config import JobsConfig

_COUNTER = re.compile(r"^vllm:generation_tokens_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)


@dataclass(frozen=True)
class LoadDecision:
    slo_tokens_per_second: float
    #: State kept between runs: the last scrape and when the target first crossed the SLO.
    state: dict[str, Any]
    changed: bool


def scrape_generated_tokens(endpoints: Iterable[str], *, timeout_s: float = 5.0) -> float:
    """Sum of ``vllm:generation_tokens_total`` over the endpoints that answer."""
    total = 0.0
    for endpoint in endpoints:
        try:
            response = httpx.get(endpoint.rstrip("/") + "/metrics", timeout=timeout_s)
        except httpx.HTTPError:
            continue
        if response.is_success:
            total += sum(float(value) for value in _COUNTER.findall(response.text))
    return total


def follow_load(
    config: JobsConfig,
    *,
    current_slo: float,
    tokens_total: float,
    now_s: float,
    state: dict[str, Any],
) -> LoadDecision:
    """The SLO to plan for, given a new counter reading at ``now_s`` (seconds, any epoch)."""
    previous = state.get("tokens_total"), state.get("at_s")
    new_state: dict[str, Any] = {"tokens_total": tokens_total, "at_s": now_s}
    if previous[0] is None or previous[1] is None or now_s <= previous[1]:
        return LoadDecision(current_slo, new_state, False)
    # A counter that went down means a replica restarted or left: count from zero.
    grown = tokens_total - previous[0] if tokens_total >= previous[0] else tokens_total
    rate = grown / (now_s - previous[1])
    target = rate * (1 + config.load_headroom_fraction)
    if config.load_min_tokens_per_second > 0:
        target = max(target, config.load_min_tokens_per_second)
    if config.load_max_tokens_per_second > 0:
        target = min(target, config.load_max_tokens_per_second)
    new_state["rate_tokens_per_second"] = rate
    new_state["target_tokens_per_second"] = target
    direction = "up" if target > current_slo else "down" if target < current_slo else ""
    if not direction:
        return LoadDecision(current_slo, new_state, False)
    since = state.get(f"{direction}_since_s") if state.get("direction") == direction else None
    since = now_s if since is None else since
    new_state.update(direction=direction, **{f"{direction}_since_s": since})
    delay = config.scale_up_delay_s if direction == "up" else config.scale_down_delay_s
    if now_s - since >= delay:
        return LoadDecision(target, {"tokens_total": tokens_total, "at_s": now_s}, True)
    return LoadDecision(current_slo, new_state, False)
