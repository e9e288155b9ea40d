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

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.client import Api, RequestSpec
from oracle.errors import InputError
from oracle.sharegpt import count_tokens, load_sharegpt

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


def output_range_workload(
    input_tokens: int, output_lengths: range, *, api: Api = "chat"
) -> Workload:
    """Prompts of ``input_tokens``, outputs of each length in ``output_lengths`` equally often."""
    if len(output_lengths) == 1:
        return fixed_workload(input_tokens, output_lengths[0], api=api)
    return Workload(
        f"range-{input_tokens}-{output_lengths[0]}to{output_lengths[-1]}",
        "mix",
        api,
        tuple(Shape(input_tokens, length) for length in output_lengths),
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


def bucket_workload(input_tokens: int, output_tokens: int, *, api: Api = "completions") -> Workload:
    """The fixed request workload a bucket's sweep sends: the bucket's representative shape."""
    return fixed_workload(input_tokens, output_tokens, api=api)
