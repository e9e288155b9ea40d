"""Benchmark of `scheduler oracle import` on a large CSV: peak memory and rows/s (not a test).

    python -m benchmarks.import_memory [--megabytes 200] [--baseline-rev 11a2daa]

Generates a spot price history CSV of about ``--megabytes`` (AZ IDs of every region, GPU types,
one change record a row) and imports it with ``oracle.importers.import_files`` into a fresh
migrated SQLite database, each run in a child process of its own so that its peak resident
memory is the child's ``ru_maxrss`` (``os.wait4``). Two runs per implementation:

- the whole file (rows/s over the import's wall time, database creation excluded; and rows per
  CPU second of the child, from ``os.wait4``: the figure to compare on a busy machine);
- the same file with a bad last row (refused, nothing written).

The whole file is imported too with the implementation at ``--baseline-rev`` (extracted with
``git archive`` beside the file), the one before streaming imports (with
``--baseline-bad-row``, the bad last row as well: the issue measured 3.26 GB there). Goal:
peak under 400 MB, at no lower rows/s than the baseline.

Measured (``--parallel``, 2 shared cores under a load of ~10; 200 MB, 3,040,000 rows): streaming
peak 139 MB for the whole file and for the bad last row (refused at FILE:3040002, nothing
written), 24,432 rows per CPU second; the baseline peaked at 3,215 MB at 23,090 rows per CPU
second (ratio 1.06; wall rows/s 2,220 vs 2,178). Again (``--parallel``, load average 12 at the
start, 7 at the end): streaming 139 MB, 3,516 rows/s and 32,060 rows per CPU second; baseline
3,215 MB, 3,493 rows/s and 30,104 rows per CPU second (ratios 1.01 wall, 1.06 per CPU second).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import shutil
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

#: What a child runs: import the file, print rows inserted and seconds, or the one-line error,
#: and its own peak resident memory (VmHWM, kB) as a check on ``ru_maxrss``.
CHILD = """
import re, sys, time
from oracle import db
from oracle.errors import OracleError
from oracle.importers import import_files
engine = db.make_engine(sys.argv[1])
db.upgrade(engine)
started = time.perf_counter()
try:
    [result] = import_files(engine, [sys.argv[2]])
except OracleError as error:
    outcome, detail = "refused", str(error)[-90:]
else:
    outcome, detail = "ok", sum(result.rows_inserted.values())
elapsed = time.perf_counter() - started
peak = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)
print(outcome, elapsed, peak, detail)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=200.0)
    parser.add_argument("--baseline-rev", default="11a2daa")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the imports at once (on a busy machine: compare rows per CPU second)",
    )
    parser.add_argument(
        "--baseline-bad-row", action="store_true", help="also the bad last row on the baseline"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        good, bad = work / "history.csv", work / "history-bad-last-row.csv"
        rows = generate(good, args.megabytes)
        # Copied, not read: the parent stays small (a child's ru_maxrss starts from it).
        shutil.copyfile(good, bad)
        with bad.open("a") as handle:
            handle.write("2021-03-02T01:45:29+00:00,use1-az1,g5.xlarge,L,x\n")
        size_mb = good.stat().st_size / 1e6
        print(f"generated {good.name}: {size_mb:,.0f} MB, {rows:,} rows", flush=True)
        implementations = [("streaming (this tree)", REPO_ROOT)]
        if not args.skip_baseline:
            implementations.append(
                (f"baseline ({args.baseline_rev})", extract(args.baseline_rev, work / "baseline"))
            )
        plan = [
            (name, root, label, path)
            for name, root in implementations
            for label, path in (("whole file", good), ("bad last row", bad))
            if root == REPO_ROOT or args.baseline_bad_row or label == "whole file"
        ]
        if args.parallel:
            started = [start_child(root, path, work) for _, root, _, path in plan]
            finished = [finish_child(*child) for child in started]
        else:
            finished = [finish_child(*start_child(root, path, work)) for _, root, _, path in plan]
        results = []
        for (name, _, label, _), (outcome, seconds, cpu_s, peak_mb, detail) in zip(
            plan, finished, strict=True
        ):
            ok = outcome == "ok"
            rate, cpu_rate = (rows / seconds, rows / cpu_s) if ok else (math.nan, math.nan)
            results.append((name, label, outcome, seconds, rate, cpu_rate, peak_mb, detail))
            print(
                f"{name}, {label}: {outcome} in {seconds:.1f} s ({rate:,.0f} rows/s; "
                f"{cpu_s:.1f} CPU s, {cpu_rate:,.0f} rows per CPU second), peak RSS "
                f"{peak_mb:,.0f} MB; {detail}",
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


def start_child(root: Path, csv_path: Path, work: Path) -> tuple[subprocess.Popen[str], Path]:
    """An import of ``csv_path`` by the tree at ``root``, in a child process of its own."""
    database = work / f"bench-{time.monotonic_ns()}.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(root)}
    # Run in ``root``: ``python -c`` puts the working directory first on the import path.
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"sqlite:///{database}", str(csv_path)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, database


def finish_child(
    process: subprocess.Popen[str], database: Path
) -> tuple[str, float, float, float, str]:
    """(outcome, seconds of the import, CPU seconds of the child, peak RSS MB, detail)."""
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the import child failed ({process.returncode}): {output}")
    outcome, seconds, own_peak_kb, detail = output.strip().split(" ", 3)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    peak_mb = usage.ru_maxrss / 1024  # ru_maxrss is in KiB
    detail = f"{detail} (the child's own VmHWM {int(own_peak_kb) / 1024:,.0f} MB)"
    return outcome, float(seconds), usage.ru_utime + usage.ru_stime, peak_mb, detail


def report(results: list[tuple[str, str, str, float, float, float, float, str]]) -> None:
    print()
    print(
        f"{'implementation':<24} {'run':<13} {'outcome':<8} {'s':>7} {'rows/s':>9} "
        f"{'rows/CPU s':>10} {'peak MB':>8}"
    )
    for name, label, outcome, seconds, rate, cpu_rate, peak_mb, _ in results:
        print(
            f"{name:<24} {label:<13} {outcome:<8} {seconds:>7.1f} {rate:>9,.0f} "
            f"{cpu_rate:>10,.0f} {peak_mb:>8,.0f}"
        )
    peak = max(result[6] for result in results if result[0].startswith("streaming"))
    print(f"streaming peak {peak:,.0f} MB (goal < {GOAL_PEAK_MB}: "
          f"{'met' if peak < GOAL_PEAK_MB else 'MISSED'})")  # fmt: skip
    whole = [result for result in results if result[1] == "whole file"]
    if len(whole) == 2:
        (_, _, _, _, new, new_cpu, _, _), (_, _, _, _, old, old_cpu, _, _) = whole
        ratio = new_cpu / old_cpu
        print(f"rows/s ratio streaming / baseline: {new / old:.2f} wall, {ratio:.2f} per CPU "
              f"second (goal >= 1.0: {'met' if ratio >= 1 else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    main()
