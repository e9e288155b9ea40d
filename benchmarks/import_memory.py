"""Benchmark of `scheduler oracle import` on a large CSV: peak memory and rows/s (not a test).

    python -m benchmarks.import_memory [--megabytes 200] [--baseline-rev 11a2daa]

Generates a spot price history CSV of about ``--megabytes`` (AZ IDs of every region, GPU types,
one change record a row) and imports it with ``oracle.importers.import_files`` into a fresh
migrated SQLite database, each run in a child process of its own so that its peak resident
memory is the child's ``ru_maxrss`` (``os.wait4``). Two runs per implementation:

- the whole file (rows/s over the command's wall time, database creation excluded);
- the same file with a bad last row (refused, nothing written: checked by counting rows).

The same runs are made with the implementation at ``--baseline-rev`` (extracted with
``git archive`` beside the file), the one before streaming imports. Goal: peak under 400 MB, at
no lower rows/s than the baseline.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GOAL_PEAK_MB = 400
HEADER = "timestamp,availability_zone_id,instance_type,product_description,spot_price\n"
#: AZ IDs of a few regions (their prefixes are in oracle.importers.zones) and GPU types.
ZONES = [
    f"{prefix}-az{n}" for prefix in ("use1", "use2", "usw2", "euw1", "apne1") for n in (1, 2, 3, 4)
]
TYPES = ["g4dn.xlarge", "g5.xlarge", "g5.12xlarge", "g6.xlarge", "g6e.2xlarge", "p4d.24xlarge",
         "p5.48xlarge", "inf2.xlarge", "trn1.2xlarge", "g6e.12xlarge"]  # fmt: skip

#: What a child runs: import the file, print rows inserted and seconds, or the one-line error.
CHILD = """
import sys, time
from oracle import db
from oracle.errors import OracleError
from oracle.importers import import_files
engine = db.make_engine(sys.argv[1])
db.upgrade(engine)
started = time.perf_counter()
try:
    [result] = import_files(engine, [sys.argv[2]])
except OracleError as error:
    print("refused", time.perf_counter() - started, str(error)[-90:])
else:
    print("ok", time.perf_counter() - started, sum(result.rows_inserted.values()))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=200.0)
    parser.add_argument("--baseline-rev", default="11a2daa")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        good, bad = work / "history.csv", work / "history-bad-last-row.csv"
        rows = generate(good, args.megabytes)
        bad.write_bytes(good.read_bytes() + b"2021-03-02T01:45:29+00:00,use1-az1,g5.xlarge,L,x\n")
        size_mb = good.stat().st_size / 1e6
        print(f"generated {good.name}: {size_mb:,.0f} MB, {rows:,} rows", flush=True)
        implementations = [("streaming (this tree)", REPO_ROOT)]
        if not args.skip_baseline:
            implementations.append(
                (f"baseline ({args.baseline_rev})", extract(args.baseline_rev, work / "baseline"))
            )
        results = []
        for name, root in implementations:
            for label, path in (("whole file", good), ("bad last row", bad)):
                outcome, seconds, detail, peak_mb = run_child(root, path, work)
                rate = rows / seconds if outcome == "ok" else float("nan")
                results.append((name, label, outcome, seconds, rate, peak_mb, detail))
                print(
                    f"{name}, {label}: {outcome} in {seconds:.1f} s "
                    f"({rate:,.0f} rows/s), peak RSS {peak_mb:,.0f} MB; {detail}",
                    flush=True,
                )
    report(results)


def generate(path: Path, megabytes: float) -> int:
    """A CSV of about ``megabytes`` MB; returns its data rows."""
    rng = random.Random(2026)
    start = datetime(2025, 9, 1, tzinfo=UTC)
    target = int(megabytes * 1e6)
    written = rows = 0
    with path.open("w") as handle:
        handle.write(HEADER)
        while written < target:
            buffer = io.StringIO()
            for _ in range(10_000):
                moment = start + timedelta(seconds=rows * 3 + rng.randrange(3))
                buffer.write(
                    f"{moment.isoformat()},{rng.choice(ZONES)},{rng.choice(TYPES)},Linux/UNIX,"
                    f"{rng.uniform(0.1, 40):.4f}\n"
                )
                rows += 1
            text = buffer.getvalue()
            handle.write(text)
            written += len(text)
    return rows


def extract(revision: str, target: Path) -> Path:
    """The tree at ``revision`` (its Python packages), via ``git archive``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", revision, "oracle", "migrations", "scheduler"],
        check=True,
        capture_output=True,
    ).stdout
    target.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def run_child(root: Path, csv_path: Path, work: Path) -> tuple[str, float, str, float]:
    """(outcome, seconds, detail, peak RSS in MB) of one import in a child process."""
    database = work / f"bench-{time.monotonic_ns()}.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"sqlite:///{database}", str(csv_path)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the import child failed ({process.returncode}): {output}")
    outcome, seconds, detail = output.strip().split(" ", 2)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    return outcome, float(seconds), detail, usage.ru_maxrss / 1024  # ru_maxrss is in KiB


def report(results: list[tuple[str, str, str, float, float, float, str]]) -> None:
    print()
    print(
        f"{'implementation':<24} {'run':<13} {'outcome':<8} {'s':>7} {'rows/s':>10} {'peak MB':>8}"
    )
    for name, label, outcome, seconds, rate, peak_mb, _ in results:
        print(
            f"{name:<24} {label:<13} {outcome:<8} {seconds:>7.1f} {rate:>10,.0f} {peak_mb:>8,.0f}"
        )
    peak = max(peak_mb for name, *_, peak_mb, _ in results if name.startswith("streaming"))
    print(f"streaming peak {peak:,.0f} MB (goal < {GOAL_PEAK_MB}: "
          f"{'met' if peak < GOAL_PEAK_MB else 'MISSED'})")  # fmt: skip
    rates = {name: rate for name, label, _, _, rate, _, _ in results if label == "whole file"}
    if len(rates) == 2:
        new, old = rates.values()
        print(f"rows/s ratio streaming / baseline: {new / old:.2f} (goal >= 1.0: "
              f"{'met' if new >= old else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    main()
