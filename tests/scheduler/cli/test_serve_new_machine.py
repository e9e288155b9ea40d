"""`scheduler serve` on a new machine (no database file yet, no config): GET /recommendations
plans on the embedded sample market, as `scheduler plan` does, and says so (issue 11)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

SCHEDULER = str(Path(sys.executable).parent / "scheduler")


def test_serve_on_a_new_machine_recommends_on_the_embedded_sample(tmp_path: Path) -> None:
    database = tmp_path / "state" / "scheduler.sqlite3"
    database.parent.mkdir()
    env = {**os.environ, "SCHEDULER_DATABASE_URL": f"sqlite:///{database}"}
    env.pop("SCHEDULER_CONFIG", None)
    process = subprocess.Popen(
        [SCHEDULER, "serve", "--port", "0", "--no-jobs"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,  # no config.toml here: the defaults
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("serving on "), line
        url = line.removeprefix("serving on ").strip()
        with httpx.Client(base_url=url, timeout=600) as client:
            _wait_until_listening(client)
            response = client.get("/recommendations", params={"slo": "500tok/s"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert "sample" in body["provenance"]
            assert any("SAMPLE" in note for note in body["notes"])
            assert body["allocations"] and body["cost_usd_per_hour"] > 0
            assert response.headers["Content-Encoding"] == "gzip"  # httpx accepts it
            with client.stream(
                "GET", "/recommendations", params={"slo": "500tok/s"}
            ) as again:  # cached now: the same bytes
                raw = b"".join(again.iter_raw())
            assert again.headers["ETag"] == response.headers["ETag"]
            assert gzip.decompress(raw) == response.content
    finally:
        process.terminate()
        process.wait(30)
    assert "Traceback" not in (process.stderr.read() if process.stderr else "")


def _wait_until_listening(client: httpx.Client) -> None:
    """The line comes out just before uvicorn binds its port."""
    for _ in range(600):
        try:
            if client.get("/healthz", timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the service never answered /healthz")
