"""Workload mixes as data: a distribution over (input length bucket x output length bucket).

A request of ``i`` prompt tokens and ``o`` output tokens falls in the bucket of the edges
:data:`INPUT_EDGES` x :data:`OUTPUT_EDGES` that hold it (lower edge inclusive). A bucket's share
is its fraction of the workload's *output tokens* (the unit of the SLO), and its shape, the
lengths a benchmark sends for it, is the share-weighted mean of the lengths that fell in it.

A mix comes from one of:
- a named preset (:data:`PRESETS`: ``chat``, ``rag``, ``summarize``, ``codegen``);
- a ShareGPT-style JSON file (:func:`oracle.sharegpt.load_sharegpt`: the first human turn is the
  prompt, the reply's length the output);
- a histogram file: CSV with the header ``input_tokens,output_tokens,count`` (``weight`` in place
  of ``count`` is read the same), or a JSON list of such objects.

Bucket names read ``in512-2048.out0-128`` (``in8192+`` for the open last bucket).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from oracle.errors import InputError
from oracle.sharegpt import count_tokens, load_sharegpt

#: Lower edges of the input (prompt) length buckets, in tokens. Mélange (arXiv 2404.14527, §5)
#: profiles over input and output length buckets of this kind, doubling-ish up to 8k.
INPUT_EDGES = (0, 512, 2048, 8192)
#: Lower edges of the output length buckets, in tokens.
OUTPUT_EDGES = (0, 128, 512)


@dataclass(frozen=True)
class Bucket:
    name: str
    #: The representative lengths a benchmark sends for this bucket.
    input_tokens: int
    output_tokens: int
    #: Fraction of the workload's output tokens (all buckets of a mix sum to 1).
    share: float


@dataclass(frozen=True)
class BucketMix:
    workload_id: str
    #: Where the mix came from: ``preset``, ``sharegpt FILE``, ``histogram FILE``.
    source: str
    buckets: tuple[Bucket, ...]

    def shares(self) -> dict[str, float]:
        return {bucket.name: bucket.share for bucket in self.buckets}


#: The named presets, as (input tokens, output tokens, weight in requests) shapes. These are
#: this project's own illustrative choices, not measured traces: ``chat`` short prompts and
#: replies of a few hundred tokens (ShareGPT-like), ``rag`` long retrieved context with short
#: answers, ``summarize`` long documents with mid-length summaries, ``codegen`` mid-length
#: prompts with long generated code.
PRESETS: dict[str, tuple[tuple[int, int, float], ...]] = {
    "chat": ((128, 96, 0.45), (384, 256, 0.35), (1024, 320, 0.15), (3072, 640, 0.05)),
    "rag": ((3072, 96, 0.5), (6144, 160, 0.3), (12288, 256, 0.2)),
    "summarize": ((3072, 384, 0.4), (6144, 384, 0.35), (12288, 512, 0.25)),
    "codegen": ((256, 384, 0.35), (1024, 768, 0.4), (3072, 1024, 0.25)),
}


def resolve_mix(name: str) -> BucketMix | None:
    """The mix ``name`` names: a preset, or an existing file (ShareGPT or histogram); ``None``
    when it is neither (a named request workload of the config, say)."""
    if name in PRESETS:
        return mix_from_shapes(name, "preset", PRESETS[name])
    path = Path(name)
    if path.is_file():
        return load_mix_file(path)
    return None


def load_mix_file(path: Path) -> BucketMix:
    """A mix from a ShareGPT JSON, a histogram CSV or a histogram JSON; bad files raise
    InputError naming what is wrong."""
    text = _read(path)
    workload_id = path.stem[:64]
    if path.suffix.lower() == ".csv":
        return mix_from_shapes(workload_id, f"histogram {path}", _csv_rows(path, text))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}: not valid JSON ({error}); expected a ShareGPT list or a histogram list"
        ) from None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        if "conversations" in data[0]:
            pairs = load_sharegpt(path)
            shapes = [(count_tokens(prompt), output, 1.0) for prompt, output in pairs]
            return mix_from_shapes(workload_id, f"sharegpt {path}", shapes)
        if "input_tokens" in data[0]:
            return mix_from_shapes(workload_id, f"histogram {path}", _json_rows(path, data))
    raise InputError(
        f"{path}: expected a ShareGPT list of conversations or a histogram list of "
        "{input_tokens, output_tokens, count} objects"
    )


def mix_from_shapes(
    workload_id: str, source: str, shapes: Iterable[tuple[int, int, float]]
) -> BucketMix:
    """Bucket (input tokens, output tokens, weight in requests) shapes: shares by output
    tokens, shapes by output-token-weighted mean lengths."""
    sums: dict[tuple[int, int], list[float]] = {}
    for input_tokens, output_tokens, weight in shapes:
        if input_tokens < 0 or output_tokens <= 0 or weight < 0:
            raise InputError(
                f"workload {workload_id}: a shape needs input_tokens >= 0, output_tokens > 0 "
                f"and a weight >= 0 (got {input_tokens}, {output_tokens}, {weight})"
            )
        key = (_index(INPUT_EDGES, input_tokens), _index(OUTPUT_EDGES, output_tokens))
        tokens = weight * output_tokens
        entry = sums.setdefault(key, [0.0, 0.0, 0.0])
        entry[0] += tokens
        entry[1] += tokens * input_tokens
        entry[2] += tokens * output_tokens
    total = sum(entry[0] for entry in sums.values())
    if total <= 0:
        raise InputError(f"workload {workload_id}: no request with a positive weight")
    buckets = tuple(
        Bucket(
            name=bucket_name(i, o),
            input_tokens=max(1, round(entry[1] / entry[0])),
            output_tokens=max(1, round(entry[2] / entry[0])),
            share=entry[0] / total,
        )
        for (i, o), entry in sorted(sums.items())
        if entry[0] > 0
    )
    return BucketMix(workload_id, source, buckets)


def bucket_name(input_index: int, output_index: int) -> str:
    return f"in{_range(INPUT_EDGES, input_index)}.out{_range(OUTPUT_EDGES, output_index)}"


def bucket_of(input_tokens: int, output_tokens: int) -> str:
    """The name of the bucket a request of these lengths falls in."""
    return bucket_name(_index(INPUT_EDGES, input_tokens), _index(OUTPUT_EDGES, output_tokens))


def _range(edges: Sequence[int], index: int) -> str:
    if index + 1 < len(edges):
        return f"{edges[index]}-{edges[index + 1]}"
    return f"{edges[index]}+"


def _index(edges: Sequence[int], value: int) -> int:
    index = 0
    for number, edge in enumerate(edges):
        if value >= edge:
            index = number
    return index


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: workload file not found; check --workload") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the workload file ({error})") from None


def _csv_rows(path: Path, text: str) -> list[tuple[int, int, float]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or ())
    weight_field = "count" if "count" in fields else "weight"
    if not {"input_tokens", "output_tokens", weight_field} <= fields:
        raise InputError(
            f"{path}: a histogram CSV needs the header input_tokens,output_tokens,count "
            f"(found {','.join(reader.fieldnames or ()) or 'none'})"
        )
    rows = []
    for number, row in enumerate(reader, start=2):
        try:
            rows.append(
                (int(row["input_tokens"]), int(row["output_tokens"]), float(row[weight_field]))
            )
        except (TypeError, ValueError):
            raise InputError(
                f"{path}: line {number}: input_tokens and output_tokens must be integers and "
                f"{weight_field} a number"
            ) from None
    return rows


def _json_rows(path: Path, data: list[object]) -> list[tuple[int, int, float]]:
    rows = []
    for number, item in enumerate(data):
        try:
            assert isinstance(item, dict)
            weight = item.get("count", item.get("weight"))
            if weight is None:
                raise KeyError("count")
            rows.append((int(item["input_tokens"]), int(item["output_tokens"]), float(weight)))
        except (AssertionError, KeyError, TypeError, ValueError):
            raise InputError(
                f"{path}: item {number} needs integer input_tokens and output_tokens and a "
                "numeric count"
            ) from None
    return rows
