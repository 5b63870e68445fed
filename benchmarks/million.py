"""A million items on PostgreSQL: ingest rate, label rate, peak memory of every process, database size per item.

For each size (100,000, then 1,000,000 by default): a fresh database on a throwaway PostgreSQL cluster
(tests/pgcluster.py), a JSONL file of distinct reviews, ``labelloop ingest`` and ``labelloop label`` as the
processes a user would start, against a zero-latency simulated server (benchmarks/simserver.py). Peak RSS is
each process's own (``wait4``); memory is flat when the 1,000,000 figure stays within 1.3× the 100,000 one.

Usage::

    .venv/bin/python benchmarks/million.py [--sizes 100000 1000000] [--concurrency 128]

About 20 minutes on 2 cores for both sizes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from labelloop import Project  # noqa: E402
from pgcluster import PostgresCluster  # noqa: E402
from simserver import SimServerProcess  # noqa: E402
from throughput import write_jsonl  # noqa: E402


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, command
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def one_size(items: int, workdir: Path, cluster: PostgresCluster, server: SimServerProcess, concurrency: int) -> dict:
    database = cluster.database()
    env = {**os.environ, "LABELLOOP_DATABASE_URL": database}
    root = workdir / f"p{items}"
    subprocess.run([sys.executable, "-m", "labelloop", "init", str(root), "--template", "sentiment"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    data = write_jsonl(workdir / f"reviews{items}.jsonl", items)
    cli = [sys.executable, "-m", "labelloop"]
    ingest_s, ingest_rss = run([*cli, "ingest", str(data), "--project", str(root)], env)
    label_s, label_rss = run([*cli, "label", "--project", str(root), "--backend", "openai", "--base-url",
                              server.base_url, "--model", "sim", "--concurrency", str(concurrency), "--quiet"], env)
    os.environ["LABELLOOP_DATABASE_URL"] = database
    with Project(root) as project:
        labeled = project.store.db.execute("SELECT count(*) FROM predictions WHERE is_current = 1").fetchone()[0]
        size = project.store.db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    assert labeled == items, (labeled, items)
    return {"items": items, "ingest_per_s": items / ingest_s, "ingest_rss": ingest_rss, "label_per_s": items / label_s,
            "label_rss": label_rss, "bytes_per_item": size / items}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="labelloop-million-"))
    cluster = PostgresCluster()
    results = []
    try:
        with SimServerProcess(slots=4096, latency_ms=0, max_seconds=7200) as server:
            for items in args.sizes:
                result = one_size(items, workdir, cluster, server, args.concurrency)
                results.append(result)
                print(f"{items:>9,} items: ingest {result['ingest_per_s']:,.0f} items/s (peak RSS"
                      f" {result['ingest_rss']:.0f} MiB), label {result['label_per_s']:,.0f} items/s (peak RSS"
                      f" {result['label_rss']:.0f} MiB), database {result['bytes_per_item']:,.0f} bytes per item",
                      flush=True)
    finally:
        cluster.stop()
    if len(results) > 1:
        first, last = results[0], results[-1]
        for key in ("ingest_rss", "label_rss"):
            print(f"{key.split('_')[0]} peak RSS at {last['items']:,} ÷ at {first['items']:,}:"
                  f" {last[key] / first[key]:.2f} (flat: <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
