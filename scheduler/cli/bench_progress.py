"""The live display of a benchmark sweep: one progress bar per sweep point, on stderr.

Apart from :mod:`scheduler.cli.bench` so that the harness's sweep (and aiohttp under it) loads
only when a sweep runs.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.client import RequestResult
from bench.loadgen import PointMetrics
from bench.sweep import SweepProgress
from scheduler.cli.bench import _level
from scheduler.cli.output import err_console


class LiveProgress(SweepProgress):
    """A rich progress display on stderr: one bar per sweep point."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(
            on_point_start=self._start, on_result=self._result, on_point_done=self._done
        )
        self._progress = progress
        self._task: Any = None

    def _start(self, level: float, requests: int) -> None:
        label = f"level {level:g}"
        self._task = self._progress.add_task(label, total=requests)

    def _result(self, result: RequestResult) -> None:
        if self._task is not None:
            self._progress.advance(self._task)

    def _done(self, point: PointMetrics) -> None:
        if self._task is None:
            return
        verdict = "pass" if point.passed else "fail"
        ttft = point.latency_ms.get("ttft_ms_p95", float("nan"))
        tpot = point.latency_ms.get("tpot_ms_p95", float("nan"))
        self._progress.update(
            self._task,
            description=f"{_level(point)}: {point.output_tokens_per_second:.0f} tok/s, "
            f"TTFT p95 {ttft:.0f} ms, TPOT p95 {tpot:.1f} ms, {verdict}",
        )


class ProgressContext:
    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=not sys.stderr.isatty(),
        )

    def __enter__(self) -> LiveProgress:
        self._progress.__enter__()
        return LiveProgress(self._progress)

    def __exit__(self, *exc_info: object) -> None:
        self._progress.__exit__(None, None, None)
