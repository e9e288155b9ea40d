"""ShareGPT-style conversation files: (prompt, output length) pairs.

A file is a JSON list of ``{"conversations": [{"from": "human", "value": ...}, {"from": "gpt",
"value": ...}]}``; the first human turn is the prompt and the reply's length sets the output
length. Read by the load generator (what to send) and by workload mixes (their buckets).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oracle.errors import InputError

#: Longest output requested from a ShareGPT reply, and shortest, in tokens.
SHAREGPT_MAX_OUTPUT_TOKENS = 1024
SHAREGPT_MIN_OUTPUT_TOKENS = 4


def load_sharegpt(path: Path) -> list[tuple[str, int]]:
    """(prompt, output tokens) pairs from a ShareGPT-style file; bad files raise InputError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: ShareGPT file not found; check the workload's path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error}); expected a ShareGPT list") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of conversations")
    pairs: list[tuple[str, int]] = []
    for number, item in enumerate(data):
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list):
            raise InputError(f"{path}: item {number} has no 'conversations' list")
        pair = _first_exchange(turns)
        if pair is not None:
            pairs.append(pair)
    if not pairs:
        raise InputError(f"{path}: no conversation has a human turn followed by a reply")
    return pairs


def _first_exchange(turns: Sequence[Any]) -> tuple[str, int] | None:
    for first, second in itertools.pairwise(turns):
        if not (isinstance(first, dict) and isinstance(second, dict)):
            continue
        if first.get("from") in ("human", "user") and second.get("from") in ("gpt", "assistant"):
            prompt = str(first.get("value", ""))
            output = count_tokens(str(second.get("value", "")))
            output = max(SHAREGPT_MIN_OUTPUT_TOKENS, min(SHAREGPT_MAX_OUTPUT_TOKENS, output))
            if prompt.strip():
                return prompt, output
    return None


def count_tokens(text: str) -> int:
    # Without the model's tokenizer: about 4 characters per token in English (OpenAI's rule of
    # thumb), and never fewer tokens than words.
    return max(len(text.split()), round(len(text) / 4), 1)
