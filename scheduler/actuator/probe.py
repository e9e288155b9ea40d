"""The readiness probe: POST a one-token chat completion, as the seed's sky serve YAML does."""

from __future__ import annotations

from typing import Any

import httpx

from scheduler.config import ServiceSpecConfig


def probe_body(spec: ServiceSpecConfig, *, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": spec.readiness_message}],
        "max_tokens": 1,
    }


def is_ready(
    endpoint: str, spec: ServiceSpecConfig, *, model: str, timeout_s: float = 10.0
) -> bool:
    """True when ``endpoint`` answers the probe with a 2xx JSON completion."""
    url = endpoint.rstrip("/") + spec.readiness_path
    try:
        response = httpx.post(url, json=probe_body(spec, model=model), timeout=timeout_s)
    except httpx.HTTPError:
        return False
    if not response.is_success:
        return False
    try:
        payload = response.json()
    except ValueError:
        return False
    return isinstance(payload, dict) and bool(payload.get("choices"))
