"""Benchmark: GET /recommendations under concurrent load, beside a bare FastAPI route.

    python -m benchmarks.api [--concurrency 32] [--duration-s 10] [--slo 500tok/s]
    python -m benchmarks.api --busters 16 [--cached-clients 4] [--duration-s 30]

Starts `scheduler serve` (uvicorn, one process) on a fresh SQLite database holding the embedded
sample market and reference goodput figures (loaded by one `scheduler plan` first), warms the
recommendation cache, then drives GET /recommendations with ``--concurrency`` keep-alive
clients for ``--duration-s`` seconds. The baseline is a bare FastAPI route on uvicorn returning
the same JSON bytes, driven the same way in the same run, in interleaved rounds so that load
from elsewhere on the machine hits both alike. Prints requests per second and p50 / p99 latency
of each, and the ratio scheduler / bare (goal: >= 0.7). Figures depend on the machine.

With ``--busters N`` it measures cheap reads under load instead (the goals of issue 11):
``--cached-clients`` clients ask for the cached SLO alone for ``--duration-s`` seconds, then
again beside N cache-busting clients that each ask for a new SLO on every request (uncached
plans), then the busters run alone. Prints the cached clients' p50/p99 without and with the
busters (goal: p99 ratio <= 2), the uncached plans served per second beside the cached clients
and alone (goal: >= 10 on 2 cores; the issue measured 2.1 with busters alone; the busters'
503 `busy` answers are counted apart), and the CPU that the serving process, the planning
workers and the clients (this process, on the same machine) took in each phase. The clients
share the cores: on a machine busy with other work the measured rates fall, so it also prints
the plans per second that two otherwise idle cores would sustain at the CPU-seconds per plan
measured. The planning workers run at a lower priority than the serving process (SCHED_IDLE,
``service.plan_priority``), so beside closed-loop cached clients (which take every cycle they
are given) they get what is left.

Measured with SCHED_IDLE workers and busters (``--busters 16 --duration-s 30``, 2 cores, two
runs, load average 1.0-2.4 before): cached p99 beside the busters / alone 1.48 (14.6 / 9.9 ms)
and 1.78 (18.5 / 10.4 ms); uncached plans with the busters alone 19.7 and 20.5/s, beside the
cached clients 7.1 and 5.8/s (the idle workers get the 0.6 core the clients leave). At
niceness 19 alone the ratio was 2.0 to 3.5 in four runs.

Measured (``--busters 16 --duration-s 30``, 2 cores shared with other work, load average 4.3 to
5.8; this tree and the one before gzip and single encoding, in turns base/this/this/base):
busters alone 10.7 and 12.2 uncached plans/s against 5.7 and 7.3 (the workers' 0.069-0.073
CPU-s per plan against 0.086-0.100; 25.4 and 26.8 plans/s on 2 otherwise idle cores against
20.9 and 18.2); cached p99 beside the busters / alone 1.43 and 0.99 against 1.79 and 3.57;
uncached plans beside the cached clients 3.1 and 4.0/s against 2.1 and 2.1 (the niced workers
get what the clients, the serving process and the machine's other work leave).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

TOKEN = "bench-token"
WARM_UP_S = 8.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--slo", default="500tok/s")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per side")
    parser.add_argument("--busters", type=int, default=0, help="cache-busting clients")
    parser.add_argument("--cached-clients", type=int, default=4)
    parser.add_argument(
        "--bare-server", nargs=2, metavar=("PORT", "BODY_FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.bare_server:
        _serve_bare(int(args.bare_server[0]), Path(args.bare_server[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SCHEDULER_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "SCHEDULER_API_TOKEN": TOKEN,
        }
        env.pop("SCHEDULER_CONFIG", None)
        subprocess.run(
            [
                _scheduler(),
                "plan",
                "--slo",
                args.slo,
                "--format",
                "json",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=tmp,
        )
        path = f"/recommendations?slo={args.slo}"
        pids: list[int] = []
        if args.busters:
            with _server(_serve_command(), env, tmp, pids) as url:
                _busting(url, path, args, pids[0])
            return
        with _server(_serve_command(), env, tmp) as url:
            first = httpx.get(url + path, timeout=300)  # warms the cache
            if first.status_code != 200:
                raise RuntimeError(f"GET {path}: {first.status_code} {first.text}")
            body = first.content
            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(body)
            bare_command = [sys.executable, "-m", "benchmarks.api", "--bare-server", "{port}"]
            with _server([*bare_command, str(body_file)], env, tmp) as bare_url:
                # Interleaved rounds, so that load from elsewhere on the machine hits both alike.
                rounds: dict[str, list[dict[str, Any]]] = {"scheduler": [], "bare": []}
                each_s = args.duration_s / args.rounds
                for _ in range(args.rounds):
                    for name, base in (("scheduler", url), ("bare", bare_url)):
                        figures = asyncio.run(_load(base + path, args.concurrency, each_s))
                        rounds[name].append(figures)
        scheduler, bare = _combine(rounds["scheduler"]), _combine(rounds["bare"])
    print(
        f"GET /recommendations, {args.concurrency} concurrent clients, {args.duration_s:.0f} s "
        f"per side in {args.rounds} interleaved rounds, response {len(body)} bytes"
    )
    print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, figures in (("scheduler serve", scheduler), ("bare FastAPI route", bare)):
        print(
            f"{name:24}{figures['rps']:>10.0f}{figures['p50_ms']:>10.1f}"
            f"{figures['p99_ms']:>10.1f}{figures['errors']:>8}"
        )
    ratio = scheduler["rps"] / bare["rps"] if bare["rps"] else float("nan")
    print(f"ratio scheduler / bare (req/s): {ratio:.2f} (goal >= 0.7)")


def _busting(url: str, path: str, args: argparse.Namespace, server_pid: int) -> None:
    first = httpx.get(url + path, timeout=300)  # warms the cache (and the planning data)
    if first.status_code != 200:
        raise RuntimeError(f"GET {path}: {first.status_code} {first.text}")
    with _cpu(server_pid) as alone_cpu:
        alone = asyncio.run(_load(url + path, args.cached_clients, args.duration_s))
    # The first uncached plans start the planning workers (and load their copy of the data):
    # a one-off at start-up, kept out of the measurement.
    asyncio.run(_with_busters(url, path, args, duration_s=WARM_UP_S, seed=90_000))
    with _cpu(server_pid) as beside_cpu:
        cached, beside = asyncio.run(_with_busters(url, path, args))
    with _cpu(server_pid) as busting_cpu:
        _, busting = asyncio.run(_with_busters(url, path, args, cached_clients=0, seed=50_000))
    alone_f, cached_f = _combine([alone]), _combine([cached])
    print(
        f"GET /recommendations: {args.cached_clients} clients on a cached SLO, "
        f"{args.duration_s:.0f} s alone, then {args.duration_s:.0f} s beside {args.busters} "
        "cache-busting clients (a new SLO per request), then the busters alone "
        f"{args.duration_s:.0f} s"
    )
    print(f"{'cached clients':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, figures in (("alone", alone_f), ("beside the busters", cached_f)):
        print(
            f"{name:24}{figures['rps']:>10.0f}{figures['p50_ms']:>10.1f}"
            f"{figures['p99_ms']:>10.1f}{figures['errors']:>8}"
        )
    ratio = cached_f["p99_ms"] / alone_f["p99_ms"]
    print(f"cached p99 beside the busters / alone: {ratio:.2f} (goal <= 2)")
    for name, figures in (("beside the cached clients", beside), ("alone", busting)):
        planned = figures["planned"] / figures["elapsed_s"]
        p50_ms = np.percentile(figures["latencies_ms"], 50) if figures["planned"] else np.nan
        print(
            f"uncached plans served, busters {name}: {planned:.1f}/s (goal >= 10), p50 "
            f"{p50_ms:.0f} ms; busy (503) answers {figures['busy']}, other errors "
            f"{figures['errors']}"
        )
    print("CPU (cores) of each part meanwhile:")
    print(f"{'':28}{'serving':>9}{'workers':>9}{'clients':>9}{'CPU-s/plan':>12}{'CPU-ms/read':>13}")
    phases = (
        ("cached clients alone", alone_cpu, alone_f["requests"], 0),
        ("beside the busters", beside_cpu, cached_f["requests"], beside["planned"]),
        ("busters alone", busting_cpu, 0, busting["planned"]),
    )
    for name, cpu, reads, plans in phases:
        per_plan = cpu["workers_s"] / plans if plans else np.nan
        # The serving process's CPU per cached read, where it served only those.
        per_read_ms = 1000 * cpu["serving_s"] / reads if reads and not plans else np.nan
        cores = [cpu[part] / cpu["elapsed_s"] for part in ("serving_s", "workers_s", "clients_s")]
        print(f"{name:28}" + "".join(f"{c:>9.2f}" for c in cores) + f"{per_plan:>12.3f}", end="")
        print(f"{per_read_ms:>13.2f}")
    # What the busters alone cost per plan, all parts together: the rate two otherwise idle
    # cores would sustain, whatever else this machine ran meanwhile.
    parts_s = sum(busting_cpu[p] for p in ("serving_s", "workers_s", "clients_s"))
    if busting["planned"]:
        per_plan_s = parts_s / busting["planned"]
        print(
            f"busters alone: {per_plan_s:.3f} CPU-s per uncached plan (serving, workers and "
            f"clients): {2 / per_plan_s:.1f} plans/s on 2 otherwise idle cores (goal >= 10)"
        )
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the clients run on "
        "this machine too: on a busy one the measured rates fall)"
    )


@contextmanager
def _cpu(server_pid: int) -> Iterator[dict[str, float]]:
    """CPU-seconds of the serving process, of its planning workers and of these clients (this
    process) over the block, and the block's wall-clock seconds."""
    figures: dict[str, float] = {}
    serving_s, workers_s = _tree_cpu_s(server_pid)
    clients_s, began = _own_cpu_s(), time.perf_counter()
    yield figures
    serving_after_s, workers_after_s = _tree_cpu_s(server_pid)
    figures.update(
        serving_s=serving_after_s - serving_s,
        workers_s=workers_after_s - workers_s,
        clients_s=_own_cpu_s() - clients_s,
        elapsed_s=time.perf_counter() - began,
    )


def _own_cpu_s() -> float:
    """This process's CPU seconds and its ended children's (the busters' processes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


async def _with_busters(
    url: str,
    path: str,
    args: argparse.Namespace,
    *,
    duration_s: float | None = None,
    seed: int = 0,
    cached_clients: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cached clients here and the busters in a process of their own, side by side: the
    busters' own client work (16 connections parsing and unpacking plans) stays out of the
    cached clients' event loop, and so out of their latencies, as it would be on the other
    machines a real crowd of clients runs on (both still share this machine's cores)."""
    duration_s = duration_s or args.duration_s
    cached_clients = args.cached_clients if cached_clients is None else cached_clients
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_busters_process, args=(url, args.busters, duration_s, seed, sender)
    )
    process.start()
    sender.close()
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, receiver.recv)
    assert ready == "ready"
    if cached_clients:
        cached = await _load(url + path, cached_clients, duration_s)
    else:
        cached = {}
    busting: dict[str, Any] = await loop.run_in_executor(None, receiver.recv)
    await loop.run_in_executor(None, process.join)
    busting["latencies_ms"] = np.array(busting.pop("latencies")) * 1000
    return cached, busting


def _busters_process(
    url: str, count: int, duration_s: float, seed: int, out: multiprocessing.connection.Connection
) -> None:
    """The busters' process, at the lowest priority (their own client work stands for other
    machines' and should take from this machine's cores only what is left: ``SCHED_IDLE``
    where the OS has it, as the planning workers): says it is ready, then runs them and sends
    their figures."""
    from scheduler.services.recommendations import lower_priority

    lower_priority("idle")
    out.send("ready")
    out.send(asyncio.run(_busters(url, count, duration_s, seed)))
    out.close()


async def _busters(url: str, count: int, duration_s: float, seed: int) -> dict[str, Any]:
    counter = iter(range(seed, 10**9))
    busting: dict[str, Any] = {"planned": 0, "busy": 0, "errors": 0, "latencies": []}
    stop_at = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)

    async def buster(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop_at:
            # A distinct SLO per request: 400.000, 400.001, ... tok/s from seed 0 (450.000 from
            # seed 50,000): one problem size throughout, never a cached one.
            slo = f"{400 + next(counter) / 1000:.3f}tok/s"
            started = time.perf_counter()
            try:
                response = await client.get(f"{url}/recommendations?slo={slo}")
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            if status == 200:
                busting["planned"] += 1
                busting["latencies"].append(time.perf_counter() - started)
            elif status == 503:
                busting["busy"] += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            else:
                busting["errors"] += 1

    began = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(buster(client) for _ in range(count)))
    busting["elapsed_s"] = time.perf_counter() - began
    return busting


def _tree_cpu_s(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of ``pid`` and of its live descendants, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        process = int(stat.parent.name)
        parent[process] = int(fields[1])
        cpu[process] = (int(fields[11]) + int(fields[12])) / ticks
    tree = {pid}
    while True:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        if not more:
            break
        tree |= more
    return cpu.get(pid, 0.0), sum(cpu.get(p, 0.0) for p in tree - {pid})


def _serve_command() -> list[str]:
    return [_scheduler(), "serve", "--port", "{port}", "--no-jobs"]


def _scheduler() -> str:
    """The `scheduler` command installed beside this Python."""
    return str(Path(sys.executable).parent / "scheduler")


@contextmanager
def _server(
    command: list[str], env: dict[str, str], cwd: str, pids: list[int] | None = None
) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if pids is not None:
        pids.append(process.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"server did not start: {' '.join(command)}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _combine(rounds: list[dict[str, Any]]) -> dict[str, float]:
    latencies = np.concatenate([r["latencies_ms"] for r in rounds])
    elapsed = sum(r["elapsed_s"] for r in rounds)
    if not len(latencies):
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": 0}
    return {
        "rps": len(latencies) / elapsed,
        "requests": float(len(latencies)),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "errors": sum(r["errors"] for r in rounds),
    }


async def _load(url: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    if not concurrency:
        return {"latencies_ms": np.array([]), "elapsed_s": 0.0, "errors": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        stop_at = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"latencies_ms": np.array(latencies) * 1000, "elapsed_s": elapsed, "errors": errors}


def _serve_bare(port: int, body_file: Path) -> None:
    """The baseline: the same JSON bytes from a bare route, same server, same settings."""
    import uvicorn
    from fastapi import FastAPI, Response

    body = body_file.read_bytes()
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/recommendations")
    def recommendations(slo: str) -> Response:
        return Response(body, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
