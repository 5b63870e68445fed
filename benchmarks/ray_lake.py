"""The Ray runner in lake mode: its rate against the simulated server's capacity, against the local engine on
the same items, and against Ray's own HTTP processor (``ray.data.llm``) doing the same calls and judging.

``capacity`` (default): a server of 128 slots x 200 ms (640 requests/s), N items (default 30,000) in a
Parquet file; three runs in this process on a local Ray (``ray.init(num_cpus=2)``, started before the clock):

* the local engine (``labelloop.label``, the items ingested beforehand, the label run timed);
* the Ray runner in lake mode (everything in the run timed: planning, starting the actors, the import of the
  items to review);
* ``ray.data.llm``'s ``HttpRequestProcessorConfig`` with ``build_processor``: the same rendered requests, its
  postprocess judging each answer with labelloop's quality gate, shards written with ``write_parquet``.

``million``: 1,000,000 items in lake mode against a zero-latency server: items/s, peak memory of the driver
and of each worker (early units against late ones), output bytes per item.

Usage::

    .venv/bin/python benchmarks/ray_lake.py capacity [--items 30000]
    .venv/bin/python benchmarks/ray_lake.py million [--items 1000000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402

from labelloop import Project, label  # noqa: E402
from labelloop.gate import judge  # noqa: E402
from labelloop.ingest import content_hash  # noqa: E402
from labelloop.job import Job  # noqa: E402
from labelloop.lake import RayOptions, label_on_ray  # noqa: E402
from labelloop.prompt import build_prompt  # noqa: E402
from labelloop.store import Item  # noqa: E402
from simserver import SimServerProcess  # noqa: E402

MOODS = ["arrived late and broken", "works perfectly", "is fine I guess", "was refunded at once", "never again"]


def write_items(path: Path, count: int, row_group: int = 10_000) -> Path:
    writer = None
    for start in range(0, count, row_group):
        ids = range(start, min(count, start + row_group))
        table = pa.table({"id": [f"t{i}" for i in ids], "text": [f"ticket {i}: the order {MOODS[i % 5]}" for i in ids]})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return path


def project(root: Path) -> Project:
    proj = Project.init(root, "sentiment")
    text = proj.spec_path.read_text(encoding="utf-8").replace("backend: llamacpp", "backend: openai")
    # the simulated server gives no logprobs: valid answers are accepted, as a calibrated model's mostly are
    text += "input: {id_field: id}\nreview: {accept_without_confidence: true}\n"
    proj.spec_path.write_text(text, encoding="utf-8")
    proj.close()
    return Project(root)


def local_engine(work: Path, source: Path, base_url: str, concurrency: int) -> float:
    proj = project(work / "local")
    jsonl = work / "items.jsonl"
    with jsonl.open("w", encoding="utf-8") as out:
        for row in pq.read_table(source).to_pylist():
            out.write(json.dumps(row) + "\n")
    proj.ingest(jsonl, id_field="id")
    result = label(proj.store, proj.spec, proj.settings(base_url=base_url, model="sim", concurrency=concurrency))
    proj.close()
    return result.items_per_s


def lake(work: Path, source: Path, base_url: str, concurrency: int, shard_rows: int) -> tuple[float, object]:
    proj = project(work / "lake")
    options = RayOptions(inputs=[str(source)], output=str(work / "out"), shard_rows=shard_rows)
    started = time.perf_counter()
    result = label_on_ray(proj.store, proj.spec, proj.settings(base_url=base_url, model="sim",
                                                              concurrency=concurrency), ray_options=options)
    elapsed = time.perf_counter() - started
    proj.close()
    return (result.counts.items_done + result.counts.items_failed) / elapsed, result


def ray_llm(work: Path, source: Path, base_url: str, concurrency: int, limit: int) -> float:
    """ray.data.llm's HTTP processor: the same requests, judged by labelloop's gate in its postprocess."""
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    proj = project(work / "rayllm")
    spec, settings = proj.spec, proj.settings(model="sim")
    jobs: list[Job] = []  # built once in each worker (a prompt's templates do not pickle)

    def preprocess(row: dict) -> dict:
        if not jobs:
            jobs.append(Job(spec, build_prompt(spec), settings, "sim", "llm"))
        item = Item(row["id"], row["text"], {}, content_hash(row["text"], {}))
        request = jobs[0].request(item)
        payload = {"model": "sim", "messages": request.messages, "temperature": request.temperature,
                   "max_tokens": request.max_tokens, "response_format": {"type": "json_object"}}
        return {"id": row["id"], "text": row["text"], "payload": payload}

    def postprocess(row: dict) -> dict:
        text = row["http_response"]["choices"][0]["message"]["content"]
        item = Item(row["id"], row["text"], {}, content_hash(row["text"], {}))
        verdict = judge(spec, item, text, None)
        return {"id": row["id"], "route": verdict.route.state, "output": json.dumps(verdict.validation.output)}

    config = HttpRequestProcessorConfig(url=f"{base_url}/chat/completions", batch_size=concurrency // 2,
                                        concurrency=2, max_retries=3)  # fmt: skip
    processor = build_processor(config, preprocess=preprocess, postprocess=postprocess)
    started = time.perf_counter()
    processor(ray.data.read_parquet(str(source)).limit(limit)).write_parquet(str(work / "rayllm-out"))
    elapsed = time.perf_counter() - started
    proj.close()
    return pq.read_table(str(work / "rayllm-out")).num_rows / elapsed


def capacity(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="ray-lake-"))
    source = write_items(work / "items.parquet", args.items)
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"ray.init: {time.perf_counter() - started:.1f} s (not counted)")
    with SimServerProcess(slots=128, latency_ms=200, max_seconds=3600) as server:
        cap = 128 / 0.2
        local_rate = local_engine(work, source, server.base_url, 128)
        lake_rate, result = lake(work, source, server.base_url, 128, args.shard_rows)
        llm_rate = ray_llm(work, source, server.base_url, 128, args.llm_items)
    print(f"{args.items:,} items, server capacity {cap:.0f} requests/s")
    print(f"local engine            {local_rate:7.1f} items/s  {local_rate / cap:.3f} of capacity")
    print(f"Ray runner, lake mode   {lake_rate:7.1f} items/s  {lake_rate / cap:.3f} of capacity  "
          f"{lake_rate / local_rate:.3f} of the local engine")
    print(f"ray.data.llm HTTP + gate {llm_rate:6.1f} items/s ({args.llm_items:,} items)  "
          f"{llm_rate / cap:.3f} of capacity  {llm_rate / lake_rate:.3f} of the Ray runner")
    print(f"routes {result.routes}, workers' peak RSS (MiB): {memory(result.workers_peak_rss_mb)}")  # type: ignore[attr-defined]


def memory(peaks: dict[int, list[float]]) -> str:
    """Each worker's peak RSS after its first unit and after its last."""
    return ", ".join(f"{values[0]:.0f} → {values[-1]:.0f}" for values in peaks.values())


def million(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="ray-million-"))
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # the driver's memory is the run's alone
        source = pool.apply(write_items, (work / "items.parquet", args.items, 50_000))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    proj = project(work / "p")
    before = peak_rss()
    with SimServerProcess(slots=256, latency_ms=0, max_seconds=7200) as server:
        options = RayOptions(inputs=[str(source)], output=str(work / "out"), shard_rows=args.shard_rows)
        started = time.perf_counter()
        result = label_on_ray(proj.store, proj.spec, proj.settings(base_url=server.base_url, model="sim",
                                                                  concurrency=128), ray_options=options)
        elapsed = time.perf_counter() - started
    size = sum(f.stat().st_size for f in (work / "out").rglob("*.parquet"))
    done = result.counts.items_done + result.counts.items_failed
    print(f"{done:,} items in {elapsed:.0f} s: {done / elapsed:.0f} items/s, routes {result.routes}")
    print(f"driver peak RSS {before:.0f} MiB before the run, {peak_rss():.0f} MiB after; workers' peak RSS (MiB)"
          f" after their first and last unit: {memory(result.workers_peak_rss_mb)}")
    print(f"output {size / done:.0f} bytes/item (prediction and call shards, {size / 2**20:.0f} MiB)")


def peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["capacity", "million"])
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--shard-rows", type=int, default=5000)
    parser.add_argument("--llm-items", type=int, default=3000, help="items for ray.data.llm (it is slow here)")
    args = parser.parse_args()
    args.items = args.items or (30_000 if args.what == "capacity" else 1_000_000)
    capacity(args) if args.what == "capacity" else million(args)


if __name__ == "__main__":
    main()
