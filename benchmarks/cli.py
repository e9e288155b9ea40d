"""Benchmark of the command line's start-up (not a test).

    python -m benchmarks.cli [--repeat 7] [--slo 500tok/s] [--before ../main]

Side by side in one run, each figure the median of ``--repeat`` fresh processes (run in turn, so
that the machine's load falls on both sides alike):

1. ``scheduler --help`` against ``python -c "import typer, rich.console"``, the floor of any
   typer command line; the goal is within 2x (issue 12; it was 11x, 1.9 s).
2. ``scheduler plan --slo 500tok/s``, with ``--format json`` and with the default table, as a
   whole process on a synced database (the embedded sample market, seeded, in a temporary
   SQLite file at the newest revision); the JSON run against the plan's own reported time
   (``timing_s.total``: load, build, solve, baselines). The goal is under 1.0 s for the whole
   process (it was 4.1 s, of which planning 0.38 s).

Wall-clock and CPU (user + system) seconds are printed, with the load average: on a shared
machine the wall-clock figures swell with the load, so read the ratios and the CPU figures.
``--before TREE`` runs the same commands from another checkout (say, before a change) in turn
with this one, so that both meet the same load.

The commands run through ``python -c`` with this tree first on ``sys.path`` (what the installed
``scheduler`` script does, without depending on which tree the environment points at). They run
from compiled bytecode, as an installed command does: ``PYTHONDONTWRITEBYTECODE`` is left out of
their environment (set, every run would compile the tree's modules afresh, about 0.15 s), and the
first, unmeasured run of each command writes the ``__pycache__`` files.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from oracle import db
from oracle.reference import ensure_goodput_figures
from oracle.sample import ingest_sample
from scheduler.config import PlannerConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
END = datetime(2026, 11, 1, tzinfo=UTC)
SEED = 2026
#: The goals of issue 12, and the figures it started from.
HELP_RATIO_GOAL = 2.0
PLAN_PROCESS_GOAL_S = 1.0
BEFORE = {"help_s": 1.9, "help_ratio": 11.0, "plan_s": 4.1, "plan_own_s": 0.38}

SCHEDULER = "import sys; from scheduler.cli.main import main; sys.argv[0] = 'scheduler'; main()"
FLOOR = "import typer, rich.console"


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    stdout: str


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--slo", default="500tok/s")
    parser.add_argument("--before", type=Path, help="another checkout to measure alongside")
    args = parser.parse_args(argv)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    trees = {"this tree": REPO_ROOT}
    if args.before is not None:
        trees[f"before ({args.before})"] = args.before.resolve()
    _help(args.repeat, trees)
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        _sync(url)
        _plan(url, args.slo, args.repeat, trees)


def _help(repeat: int, trees: dict[str, Path]) -> None:
    floor: list[Timing] = []
    help_: dict[str, list[Timing]] = {name: [] for name in trees}
    _run([FLOOR])
    for tree in trees.values():
        _run([SCHEDULER, "--help"], tree=tree)  # warm: the page cache, the bytecode
    for _ in range(repeat):
        floor.append(_run([FLOOR]))
        for name, tree in trees.items():
            help_[name].append(_run([SCHEDULER, "--help"], tree=tree))
    floor_s, floor_cpu = _median(floor), _median(floor, cpu=True)
    print('\n1. `scheduler --help` against `python -c "import typer, rich.console"`')
    print(f"   import typer, rich.console  {floor_s:6.3f} s wall  {floor_cpu:6.3f} s CPU")
    for name, runs in help_.items():
        help_s, help_cpu = _median(runs), _median(runs, cpu=True)
        print(
            f"   scheduler --help            {help_s:6.3f} s wall  {help_cpu:6.3f} s CPU  "
            f"ratio {help_s / floor_s:.2f}x wall, {help_cpu / floor_cpu:.2f}x CPU  [{name}]"
        )
    print(
        f"   goal <= {HELP_RATIO_GOAL:g}x (issue 12 measured {BEFORE['help_ratio']:g}x, "
        f"{BEFORE['help_s']:g} s)"
    )


def _sync(url: str) -> None:
    started = time.perf_counter()
    engine = db.make_engine(url)
    db.upgrade(engine)
    rows = ingest_sample(engine, seed=SEED, end=END)
    ensure_goodput_figures(engine, model=PlannerConfig().model)
    engine.dispose()
    print(
        f"\nsample market: {sum(rows.values()):,} rows in a fresh SQLite file "
        f"({time.perf_counter() - started:.1f} s)"
    )


def _plan(url: str, slo: str, repeat: int, trees: dict[str, Path]) -> None:
    plan = [SCHEDULER, "plan", "--slo", slo, "--as-of", END.isoformat()]
    commands = {"json": [*plan, "--format", "json"], "table": plan}
    env = {"SCHEDULER_DATABASE_URL": url}
    runs: dict[tuple[str, str], list[Timing]] = {
        (output, name): [] for output in commands for name in trees
    }
    for tree in trees.values():
        for command in commands.values():
            # Warm: the first plan may store figures; the page cache; the bytecode.
            _run(command, env, tree=tree)
    for _ in range(repeat):
        for output, command in commands.items():
            for name, tree in trees.items():
                runs[output, name].append(_run(command, env, tree=tree))
    print(f"\n2. `scheduler plan --slo {slo}` on the synced database, as a whole process")
    for (output, name), timings in runs.items():
        process_s, process_cpu = _median(timings), _median(timings, cpu=True)
        line = f"   --format {output:5}  {process_s:6.3f} s wall  {process_cpu:6.3f} s CPU"
        if output == "json":
            own_s = statistics.median(
                json.loads(run.stdout)["timing_s"]["total"] for run in timings
            )
            line += (
                f";  plan's own time (timing_s.total) {own_s:6.3f} s wall;  start-up and "
                f"output {process_s - own_s:.3f} s"
            )
        print(f"{line}  [{name}]")
    print(
        f"   goal < {PLAN_PROCESS_GOAL_S:g} s for the whole process (issue 12 measured "
        f"{BEFORE['plan_s']:g} s, of which planning {BEFORE['plan_own_s']:g} s)"
    )


def _run(code: list[str], env: dict[str, str] | None = None, tree: Path = REPO_ROOT) -> Timing:
    """One fresh ``python -c CODE ARGS...`` process from ``tree``: its wall-clock and CPU
    seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", *code],
        cwd=tree,
        env={**_environment(), "PYTHONPATH": str(tree), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(code[1:]) or code[0]} failed: {result.stderr.strip()}")
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall_s, cpu_s, result.stdout)


def _environment() -> dict[str, str]:
    """This process's environment without ``PYTHONDONTWRITEBYTECODE`` (see the module's
    docstring)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def _median(timings: list[Timing], *, cpu: bool = False) -> float:
    return statistics.median(timing.cpu_s if cpu else timing.wall_s for timing in timings)


if __name__ == "__main__":
    main()
