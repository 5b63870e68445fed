"""Beyond one process: labelloop against a minimal aiohttp client, SQLite against PostgreSQL, several workers
against several servers. Every figure is a ratio against a baseline measured in the same run.

1. a latency-simulating server (benchmarks/simserver.py, N slots × L ms) on its own core;
2. a minimal aiohttp client (one POST per item, ``C`` in flight, answers parsed, nothing stored): the ceiling
   a client can reach on this machine against that server;
3. labelloop on a fresh SQLite project of M items, then on a fresh PostgreSQL database (a throwaway cluster,
   tests/pgcluster.py): items/s, and ratios against (2) and against each other;
4. both stores at zero latency: the client's own CPU per item;
5. ``--workers K``: K servers and K ``labelloop label`` processes on one PostgreSQL project, every process
   given all K servers (``--base-url`` repeated), against the servers' summed capacity; and one process against
   the K servers.

Usage::

    .venv/bin/python benchmarks/scale.py [--items 20000] [--slots 64] [--latency-ms 100] [--concurrency 256]
                                         [--workers 3] [--skip-workers]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from labelloop import LabelOptions, Project  # noqa: E402
from labelloop.prompt import build_prompt  # noqa: E402
from pgcluster import PostgresCluster  # noqa: E402
from simserver import SimServerProcess  # noqa: E402
from throughput import new_project, split_cpus  # noqa: E402

MODEL = "sim"


async def _minimal_client(base_url: str, bodies: list[bytes], concurrency: int) -> None:
    """What any client must do at least: POST each body, read and parse the answer."""
    limit = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session:

        async def one(body: bytes) -> None:
            async with limit, session.post(f"{base_url}/chat/completions", data=body) as resp:
                answer = json.loads(await resp.text())
                json.loads(answer["choices"][0]["message"]["content"])

        await asyncio.gather(*(one(body) for body in bodies))


def minimal_rate(project: Project, base_url: str, concurrency: int) -> float:
    prompt = build_prompt(project.spec)
    bodies = [json.dumps({"model": MODEL, "messages": prompt.messages(item), "temperature": 0}).encode()
              for item in project.store.iter_items()]
    started = time.perf_counter()
    asyncio.run(_minimal_client(base_url, bodies, concurrency))
    return len(bodies) / (time.perf_counter() - started)


def labelloop_rate(project: Project, base_urls: list[str], concurrency: int) -> tuple[float, float]:
    """(items/s, client CPU ms per item) of one label run."""
    servers = {"base_url": base_urls[0]} if len(base_urls) == 1 else {"base_urls": base_urls}
    cpu, started = time.process_time(), time.perf_counter()
    result = project.label(LabelOptions(), backend="openai", model=MODEL, concurrency=concurrency, **servers)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = result.counts.items_done
    assert done == project.store.count_items() and result.status == "finished", result
    return done / wall, cpu / done * 1000


def fresh(workdir: Path, name: str, items: int, database: str | None) -> Project:
    if database:
        os.environ["LABELLOOP_DATABASE_URL"] = database
    else:
        os.environ.pop("LABELLOOP_DATABASE_URL", None)
    return new_project(workdir / name, items)


def workers_rate(workdir: Path, cluster: PostgresCluster, args: argparse.Namespace) -> None:
    servers = [SimServerProcess(slots=args.slots, latency_ms=args.latency_ms) for _ in range(args.workers)]
    for server in servers:
        server.start()
    try:
        capacity = args.workers * args.slots / (args.latency_ms / 1000)
        urls = [server.base_url for server in servers]
        for processes in (args.workers, 1):
            database = cluster.database()
            project = fresh(workdir, f"w{processes}", args.items * args.workers, database)
            project.close()
            command = [sys.executable, "-m", "labelloop", "label", "--project", str(project.root), "--backend",
                       "openai", "--model", MODEL, "--concurrency", str(args.concurrency), "--quiet"]
            for url in urls:
                command += ["--base-url", url]
            env = {**os.environ, "LABELLOOP_DATABASE_URL": database}
            started = time.perf_counter()
            running = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(processes)]
            assert [p.wait() for p in running] == [0] * processes
            rate = args.items * args.workers / (time.perf_counter() - started)
            with Project(project.root) as done:
                calls = done.store.db.execute("SELECT count(*), count(DISTINCT item_id) FROM llm_calls").fetchone()
            assert tuple(calls) == (args.items * args.workers,) * 2, calls  # no item called twice
            print(f"  {processes} process(es) × {args.workers} servers on PostgreSQL: {rate:,.0f} items/s"
                  f" = {rate / capacity:.2f} × the servers' summed capacity ({capacity:,.0f}/s)")
    finally:
        for server in servers:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--zero-items", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="labelloop-scale-"))
    server_cpu, client_cpus = split_cpus(True)
    cluster = PostgresCluster()
    try:
        capacity = args.slots / (args.latency_ms / 1000)
        print(f"server: {args.slots} slots × {args.latency_ms:g} ms = {capacity:,.0f} requests/s; "
              f"{args.items:,} items, {args.concurrency} in flight")
        with SimServerProcess(slots=args.slots, latency_ms=args.latency_ms, cpu=server_cpu) as server:
            if client_cpus:
                os.sched_setaffinity(0, client_cpus)
            sqlite = fresh(workdir, "sqlite", args.items, None)
            baseline = minimal_rate(sqlite, server.base_url, args.concurrency)
            on_sqlite, _ = labelloop_rate(sqlite, [server.base_url], args.concurrency)
            sqlite.close()
            pg = fresh(workdir, "pg", args.items, cluster.database())
            on_pg, _ = labelloop_rate(pg, [server.base_url], args.concurrency)
            pg.close()
        print(f"  minimal aiohttp client: {baseline:,.0f} items/s ({baseline / capacity:.2f} × capacity)")
        print(f"  labelloop on SQLite:    {on_sqlite:,.0f} items/s = {on_sqlite / baseline:.3f} × the minimal client")
        print(f"  labelloop on PostgreSQL: {on_pg:,.0f} items/s = {on_pg / baseline:.3f} × the minimal client,"
              f" {on_pg / on_sqlite:.3f} × SQLite")
        with SimServerProcess(slots=4096, latency_ms=0, cpu=server_cpu) as server:
            for name, database in (("SQLite", None), ("PostgreSQL", cluster.database())):
                project = fresh(workdir, f"zero-{name}", args.zero_items, database)
                rate, cpu_ms = labelloop_rate(project, [server.base_url], args.concurrency)
                project.close()
                print(f"  zero latency, {name}: {rate:,.0f} items/s, client CPU {cpu_ms:.2f} ms per item")
        if client_cpus:
            os.sched_setaffinity(0, client_cpus | {server_cpu})
        if not args.skip_workers:
            workers_rate(workdir, cluster, args)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
