"""Throughput SLO strings: ``500tok/s``, ``500 tok/s``, ``1.5k tok/s`` -> tokens per second."""

from __future__ import annotations

import math
import re

from oracle.errors import InputError

_SLO = re.compile(
    r"^\s*(?P<number>[-+]?(?:\d+(?:\.\d+)?|\.\d+))\s*(?P<suffix>[kKmM]?)\s*"
    r"(?:tok(?:ens?)?\s*/\s*s(?:ec)?)\s*$"
)
_MULTIPLIERS = {"": 1.0, "k": 1e3, "m": 1e6}


def parse_slo(text: str) -> float:
    """Output tokens per second from an SLO string; :class:`InputError` on anything else.

    Accepted: a positive number, an optional ``k`` (thousands) or ``M`` (millions), and the unit
    ``tok/s`` (also ``tokens/s``, ``tok/sec``), with or without spaces between them.
    """
    match = _SLO.match(text)
    if match is None:
        raise InputError(
            f"SLO {text!r} is not a throughput: write output tokens per second, "
            "e.g. --slo 500tok/s, '500 tok/s' or '1.5k tok/s'"
        )
    value = float(match["number"]) * _MULTIPLIERS[match["suffix"].lower()]
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"SLO {text!r} must be above 0 tok/s, e.g. --slo 500tok/s")
    return value
