"""Workloads: what the load generator sends (prompt lengths, output lengths, API).

A workload is named and versioned in config (``[bench.workloads.NAME]``); its id
``NAME`` already carries the version by convention (``chat-mix-v1``). Kinds:
- ``fixed``: every request has ``input_tokens`` in and ``output_tokens`` out;
- ``mix``: a weighted list of fixed shapes, drawn with a seeded generator;
- ``sharegpt``: a ShareGPT-style JSON file (a list of ``{"conversations": [{"from": "human",
  "value": ...}, {"from": "gpt", "value": ...}]}``); the first human turn is the prompt and the
  reply's length sets the output length.

Synthetic prompts are made of common short English words; with Llama-family tokenizers each
`` word`` is one token, so a prompt of N words is about N tokens.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.client import Api, RequestSpec
from oracle.errors import InputError

#: Words that are one token each (with a leading space) in Llama 3 and GPT-2 vocabularies.
_WORD_TEXT = """
the of and to in is it you that he was for on are with as his they be at one have this from or
had by word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make
thing see him two has look more day could go come did number sound no most people my over know
water than call first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our under name very
through just form great think say help low line
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())

#: Longest output requested from a ShareGPT reply, and shortest, in tokens.
SHAREGPT_MAX_OUTPUT_TOKENS = 1024
SHAREGPT_MIN_OUTPUT_TOKENS = 4


@dataclass(frozen=True)
class Shape:
    input_tokens: int
    output_tokens: int
    weight: float = 1.0


@dataclass(frozen=True)
class Workload:
    workload_id: str
    kind: str
    api: Api
    shapes: tuple[Shape, ...] = ()
    path: str = ""

    @classmethod
    def from_mapping(cls, workload_id: str, raw: Mapping[str, Any]) -> Workload:
        """A workload from its config table (``scheduler.config.WorkloadConfig`` as a dict)."""
        kind = str(raw.get("kind", "fixed"))
        api = raw.get("api", "chat")
        if api not in ("chat", "completions"):
            raise InputError(f"workload {workload_id!r}: api must be 'chat' or 'completions'")
        if kind == "fixed":
            shape = Shape(int(raw.get("input_tokens", 0)), int(raw.get("output_tokens", 0)))
            if shape.input_tokens <= 0 or shape.output_tokens <= 0:
                raise InputError(
                    f"workload {workload_id!r}: a fixed workload needs input_tokens and "
                    "output_tokens above 0 in [bench.workloads." + workload_id + "]"
                )
            return cls(workload_id, kind, api, (shape,))
        if kind == "mix":
            shapes = tuple(
                Shape(int(item["input_tokens"]), int(item["output_tokens"]), float(item["weight"]))
                for item in raw.get("mix", [])
            )
            if not shapes:
                raise InputError(
                    f"workload {workload_id!r}: a mix workload needs at least one entry in "
                    f"[bench.workloads.{workload_id}] mix"
                )
            return cls(workload_id, kind, api, shapes)
        if kind == "sharegpt":
            if not raw.get("path"):
                raise InputError(
                    f"workload {workload_id!r}: a sharegpt workload needs path = FILE in "
                    f"[bench.workloads.{workload_id}]"
                )
            return cls(workload_id, kind, api, (), str(raw["path"]))
        raise InputError(f"workload {workload_id!r}: unknown kind {kind!r} (fixed, mix, sharegpt)")


def fixed_workload(input_tokens: int, output_tokens: int, *, api: Api = "chat") -> Workload:
    return Workload(
        f"fixed-{input_tokens}-{output_tokens}", "fixed", api, (Shape(input_tokens, output_tokens),)
    )


def make_requests(workload: Workload, count: int, *, seed: int = 0) -> list[RequestSpec]:
    """``count`` requests drawn from ``workload`` (the same for the same seed)."""
    rng = random.Random(seed)
    if workload.kind == "sharegpt":
        conversations = load_sharegpt(Path(workload.path))
        picked = [conversations[rng.randrange(len(conversations))] for _ in range(count)]
        return [
            RequestSpec(prompt, count_tokens(prompt), output, workload.api)
            for prompt, output in picked
        ]
    weights = [shape.weight for shape in workload.shapes]
    shapes = rng.choices(workload.shapes, weights=weights, k=count)
    return [
        RequestSpec(
            synthetic_prompt(shape.input_tokens, seed=rng.randrange(2**31)),
            shape.input_tokens,
            shape.output_tokens,
            workload.api,
        )
        for shape in shapes
    ]


def synthetic_prompt(tokens: int, *, seed: int = 0) -> str:
    """A prompt of ``tokens`` words (about that many tokens); differs per seed so that a
    server's prefix cache does not make later requests cheaper."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(tokens))


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
