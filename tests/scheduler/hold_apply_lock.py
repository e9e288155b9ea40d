"""Another process holding a service's apply lock, as a second applier would.

``python -m tests.scheduler.hold_apply_lock URL SERVICE`` takes the lock, prints
``held`` (or ``busy``), and keeps it until its standard input closes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oracle.db import make_engine
from scheduler.actuator.apply_lock import apply_lock

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def apply_lock_held_elsewhere(url: str, service: str) -> Iterator[None]:
    """Hold the apply lock of ``service`` in a separate process for the ``with`` block."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.scheduler.hold_apply_lock", url, service],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == "held"
        yield
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(30)


def main() -> None:
    url, service = sys.argv[1], sys.argv[2]
    lock = apply_lock(make_engine(url), service)
    print("held" if lock.try_acquire() else "busy", flush=True)
    sys.stdin.read()
    lock.release()


if __name__ == "__main__":
    main()
