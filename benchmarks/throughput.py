"""How close labelloop gets to a model server's capacity, and what a labeled item costs the client.

One run (about half a minute with the defaults):

1. starts a latency-simulating OpenAI-compatible server (benchmarks/simserver.py) in its own
   process, pinned to its own core: N slots of L ms each, so its capacity is N / L requests/s;
2. labels a fresh project of M items with labelloop: items/s against that capacity;
3. labels a sample with a naive client as tutorials write it (4 threads, one ``requests.post``
   per item) on the same server: labelloop's speed-up over it;
4. labels a fresh project at zero latency: the client's own cost per item, next to the server's
   capacity at zero latency measured by a cheap raw-socket load client;
5. reruns (2) when every item is labeled already: no call, and how much faster it is.

Usage::

    .venv/bin/python benchmarks/throughput.py [--items 4000] [--slots 128] [--latency-ms 200] [--check]

``--check`` exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from labelloop import LabelOptions, RunResult
from labelloop.project import Project
from labelloop.prompt import build_prompt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simserver import SimServerProcess, measure_capacity  # noqa: E402

MODEL = "sim"
BACKEND_MODULE = "labelloop.backends.openai"

# Short English reviews: every index up to 12*16*16*8 = 24,576 gives a distinct text.
_OPENERS = ("Honestly,", "Overall,", "To be fair,", "In short,", "After a month,", "For the price,",
            "Sadly,", "Surprisingly,", "As a gift,", "Out of the box,", "Compared to my old one,", "All in all,")
_SUBJECTS = ("the blender", "this hotel", "the film", "the headphones", "the delivery", "customer support",
             "the laptop bag", "the pizza", "this novel", "the phone case", "the hiking boots",
             "the coffee maker", "the app", "the concert", "the rental car", "the desk lamp")
_VERDICTS = ("works perfectly", "broke within a week", "is fine, nothing special", "exceeded my expectations",
             "was a waste of money", "does what it says", "arrived damaged", "is worth every penny",
             "felt cheap and flimsy", "made my day", "was painfully slow", "is okay for the price",
             "stopped working twice", "is the best I have owned", "left me cold", "was exactly as described")
_CLOSERS = ("Would buy again.", "Not recommended.", "Five stars.", "Two stars.", "Hard to say more.",
            "Returned it.", "Telling all my friends.", "Meh.")


# -- inputs ------------------------------------------------------------------------------------

def review_text(index: int) -> str:
    """The ``index``-th of a family of distinct short English reviews."""
    parts = []
    rest = index
    for words in (_OPENERS, _SUBJECTS, _VERDICTS, _CLOSERS):
        rest, digit = divmod(rest, len(words))
        parts.append(words[digit])
    opener, subject, verdict, closer = parts
    suffix = f" (review {rest + 1})" if rest else ""
    return f"{opener} {subject} {verdict}. {closer}{suffix}"


def write_jsonl(path: Path, count: int) -> Path:
    """A JSONL file of ``count`` distinct reviews, one ``{"text": ...}`` per line."""
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            handle.write(json.dumps({"text": review_text(index)}) + "\n")
    return path


def new_project(directory: Path, items: int) -> Project:
    """A sentiment project holding ``items`` distinct reviews."""
    project = Project.init(directory, template="sentiment")
    project.ingest(write_jsonl(directory / "reviews.jsonl", items))
    return project


# -- measurements ------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the results table; a row without ``wall_s`` only carries its note."""

    name: str
    items: int = 0
    wall_s: float | None = None
    client_cpu_s: float | None = None
    server_cpu_s: float | None = None
    calls: int | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.items / self.wall_s if self.wall_s else float("inf")


@dataclass
class Target:
    """A measured ratio against its goal."""

    name: str
    value: float
    goal: float
    unit: str

    @property
    def met(self) -> bool:
        return self.value >= self.goal

    def line(self) -> str:
        flag = "" if self.met else "   MISSED"
        return f"{self.name:<30}{_number(self.value, self.unit):<14}(target >= {_number(self.goal, self.unit)}){flag}"


def _number(value: float, unit: str) -> str:
    """``31.0x`` / ``180x``, ``2,450 items/s``, or a plain ratio such as ``0.962``."""
    if unit == "x":
        return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x"
    if unit == "items/s":
        return f"{value:,.0f} items/s"
    return f"{value:.3f}".rstrip("0") if value < 1 else f"{value:.2f}"


@dataclass
class Timed:
    """Wall and CPU seconds of a block, this process's and the server's."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float | None = None
    server_stats: dict[str, Any] = field(default_factory=dict)


@contextmanager
def timed(server: SimServerProcess | None = None) -> Iterator[Timed]:
    """Measure the block; with a server, also its CPU time and counters over the block."""
    result = Timed()
    server_before = server.stats() if server else None
    cpu, wall = time.process_time(), time.perf_counter()
    yield result
    result.wall_s = time.perf_counter() - wall
    result.cpu_s = time.process_time() - cpu
    if server and server_before:
        result.server_stats = server.stats()
        result.server_cpu_s = result.server_stats["cpu_s"] - server_before["cpu_s"]


def label_with_labelloop(project: Project, server: SimServerProcess, concurrency: int) -> tuple[RunResult, Timed]:
    """One ``project.label`` run against ``server``, timed."""
    with timed(server) as clock:
        result = project.label(LabelOptions(), progress=None, backend="openai", base_url=server.base_url,
                               model=MODEL, concurrency=concurrency)
    return result, clock


def check_run(result: RunResult, expected_items: int, expected_calls: int | None = None) -> None:
    """Fail loudly when a run did not label everything cleanly (a fast wrong run proves nothing)."""
    counts = result.counts
    problems = []
    if result.status != "finished":
        problems.append(f"status {result.status} ({result.stop_reason})")
    if counts.items_done != expected_items or counts.items_failed or result.unparsable:
        problems.append(f"{counts.items_done} done, {counts.items_failed} failed, {result.unparsable} unparsable"
                        f" of {expected_items}")
    if expected_calls is not None and counts.calls != expected_calls:
        problems.append(f"{counts.calls} calls, expected {expected_calls}")
    if problems:
        raise SystemExit("benchmark run went wrong: " + "; ".join(problems))


def naive_client(project: Project, base_url: str, items: int, workers: int,
                 time_limit_s: float) -> tuple[int, Timed]:
    """Label ``items`` items the way tutorials do: a thread pool, one blocking POST per item.

    Returns how many were labeled within ``time_limit_s``, and the timing.
    """
    prompt = build_prompt(project.spec)
    sample = [item for _, item in zip(range(items), project.store.iter_items())]
    url = f"{base_url}/chat/completions"

    def label_one(messages: list[dict[str, str]]) -> str:
        resp = requests.post(url, json={"model": MODEL, "messages": messages, "temperature": 0}, timeout=60)
        data = json.loads(resp.text)
        return json.loads(data["choices"][0]["message"]["content"])["label"]

    with timed() as clock:
        labeled = _run_bounded(ThreadPoolExecutor(max_workers=workers),
                               [lambda m=prompt.messages(item): label_one(m) for item in sample], time_limit_s)
    return labeled, clock


def _run_bounded(executor: ThreadPoolExecutor, jobs: Sequence[Callable[[], str]], time_limit_s: float) -> int:
    """Run ``jobs`` on ``executor`` until done or out of time; the number that finished."""
    deadline = time.perf_counter() + time_limit_s
    pending = {executor.submit(job) for job in jobs}
    finished = 0
    try:
        while pending and time.perf_counter() < deadline:
            done, pending = wait(pending, timeout=deadline - time.perf_counter(), return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
                finished += 1
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return finished


# -- CPU placement -------------------------------------------------------------------------------

def split_cpus(pin: bool) -> tuple[int | None, set[int] | None]:
    """A core for the server and the rest for this process, when pinning is possible and wanted."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[-1], set(cpus[:-1])


@contextmanager
def client_affinity(cpus: set[int] | None) -> Iterator[None]:
    """Run the block on ``cpus`` only (the server's core excluded), then restore."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# -- the benchmark -------------------------------------------------------------------------------

@dataclass
class Report:
    """The table rows and the targets, in the order measured."""

    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def bench_latency_server(args: argparse.Namespace, workdir: Path, server_cpu: int | None, report: Report) -> None:
    """Steps 1, 2, 3 and 5: labelloop, the naive client and the rerun at L ms per request."""
    capacity = args.slots / (args.latency_ms / 1000)
    best = args.items / (math.ceil(args.items / args.slots) * args.latency_ms / 1000)
    report.rows.append(Row(f"server capacity: {args.slots} slots / {args.latency_ms:g} ms",
                           note=f"{capacity:,.1f} req/s; best possible for {args.items:,} items: "
                                f"{best:,.1f}/s = {best / capacity:.3f} of capacity (last batch partial)"))
    with SimServerProcess(args.slots, args.latency_ms, cpu=server_cpu, max_seconds=args.server_max_s) as server:
        with new_project(workdir / "latency", args.items) as project:
            started = time.time()
            first, clock = label_with_labelloop(project, server, args.concurrency)
            check_run(first, args.items, expected_calls=args.items)
            report.rows.append(Row(f"labelloop, concurrency {args.concurrency}", args.items, clock.wall_s,
                                   clock.cpu_s, clock.server_cpu_s, first.counts.calls,
                                   _fill_note(clock.server_stats, started)))
            rerun, again = label_with_labelloop(project, server, args.concurrency)
            check_run(rerun, 0, expected_calls=0)
            report.rows.append(Row("labelloop rerun, all labeled", args.items, again.wall_s, again.cpu_s,
                                   again.server_cpu_s, rerun.counts.calls, "every item already labeled: no call"))
            labeled, naive = naive_client(project, server.base_url, args.naive_items, args.naive_workers,
                                          args.naive_time_limit_s)
        report.rows.append(Row(f"naive: {args.naive_workers} threads, requests.post", labeled, naive.wall_s,
                               naive.cpu_s, None, labeled, f"first {args.naive_items:,} items"))
    lab_rate = args.items / clock.wall_s
    report.targets += [
        Target("labelloop / server capacity", lab_rate / capacity, 0.95, "ratio"),
        Target("labelloop / naive client", lab_rate / (labeled / naive.wall_s), 20.0, "x"),
        Target("cached rerun speed-up", clock.wall_s / again.wall_s, 50.0, "x"),
    ]


def _fill_note(stats: dict[str, Any], started: float) -> str:
    """When the server first got a request and was first full, after the label call began."""
    if stats.get("first_arrival") is None or stats.get("first_full") is None:
        return f"server: at most {stats.get('max_busy_slots', 0)} slots busy"
    return (f"1st request +{(stats['first_arrival'] - started) * 1000:,.0f} ms, all slots busy"
            f" +{(stats['first_full'] - started) * 1000:,.0f} ms, max {stats['max_waiting']} waiting")


def bench_zero_latency(args: argparse.Namespace, workdir: Path, server_cpu: int | None, report: Report) -> None:
    """Step 4: the client's own cost per item, and the server's capacity, at zero latency."""
    with SimServerProcess(args.slots, 0, cpu=server_cpu, max_seconds=args.server_max_s) as server:
        with new_project(workdir / "zero", args.zero_items) as project:
            body = _sample_body(project)
            result, clock = label_with_labelloop(project, server, args.concurrency)
            check_run(result, args.zero_items, expected_calls=args.zero_items)
        per_item_us = clock.cpu_s / args.zero_items * 1e6
        server_busy = (clock.server_cpu_s or 0.0) / clock.wall_s
        report.rows.append(Row("labelloop, zero latency", args.zero_items, clock.wall_s, clock.cpu_s,
                               clock.server_cpu_s, result.counts.calls,
                               f"client {per_item_us:,.0f} µs CPU/item; server core {server_busy:.0%} busy"))
        with timed(server) as load:
            _, completed = measure_capacity(server.port, body, args.load_seconds, args.load_connections)
        server_us = (load.server_cpu_s or 0.0) / max(completed, 1) * 1e6
        server_busy = (load.server_cpu_s or 0.0) / load.wall_s
        report.rows.append(Row("server alone, raw-socket load client", completed, load.wall_s, load.cpu_s,
                               load.server_cpu_s, completed,
                               f"server {server_us:,.0f} µs CPU/req; server core {server_busy:.0%} busy"))
    report.targets.append(Target("zero-latency client overhead", args.zero_items / clock.wall_s, 2000.0, "items/s"))


def _sample_body(project: Project) -> bytes:
    """A chat-completions body the size of labelloop's, for the load client."""
    prompt = build_prompt(project.spec)
    item = next(project.store.iter_items())
    return json.dumps({"model": MODEL, "messages": prompt.messages(item), "temperature": 0}).encode()


def warm_up_backend() -> float:
    """Import the backend module (and aiohttp) now; seconds it took.

    The first ``label`` call of a process would otherwise pay this import; it is a per-process
    start-up cost, not a per-item one, so the timed runs leave it out and the table shows it.
    """
    started = time.perf_counter()
    importlib.import_module(BACKEND_MODULE)
    return time.perf_counter() - started


def print_report(report: Report) -> None:
    """The results table, then one line per target."""
    header = (f"{'measurement':<42}{'items':>7}{'wall s':>9}{'items/s':>10}"
              f"{'cli CPU s':>10}{'srv CPU s':>10}{'calls':>9}  note")
    print(header)
    print("-" * len(header))
    for row in report.rows:
        if row.wall_s is None:
            print(f"{row.name:<42}{'':>7}{'':>9}{'':>10}{'':>10}{'':>10}{'':>9}  {row.note}")
            continue
        print(f"{row.name:<42}{row.items:>7,}{row.wall_s:>9.3f}{row.rate:>10,.1f}{_opt(row.client_cpu_s):>10}"
              f"{_opt(row.server_cpu_s):>10}{_opt(row.calls, '{:,}'):>9}  {row.note}")
    print()
    for target in report.targets:
        print(target.line())


def _opt(value: float | int | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; every size has a flag."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--items", type=int, default=4000, help="items labeled against the latency server")
    parser.add_argument("--slots", type=int, default=128, help="server parallel slots N")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="server time per request L")
    parser.add_argument("--concurrency", type=int, default=256, help="labelloop requests in flight (>= slots)")
    parser.add_argument("--naive-items", type=int, default=200, help="items the naive client labels")
    parser.add_argument("--naive-workers", type=int, default=4, help="naive client threads")
    parser.add_argument("--naive-time-limit-s", type=float, default=60.0, help="stop the naive client after this")
    parser.add_argument("--zero-items", type=int, default=10_000, help="items labeled at zero latency")
    parser.add_argument("--load-seconds", type=float, default=2.0, help="duration of the server-only load test")
    parser.add_argument("--load-connections", type=int, default=64, help="connections of the server-only load test")
    parser.add_argument("--server-max-s", type=float, default=600.0, help="a server process exits after this")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server and client to cores")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.latency_ms <= 0:
        parser.error("--latency-ms must be > 0 (the zero-latency step is separate)")
    if args.concurrency < args.slots:
        print(f"warning: --concurrency {args.concurrency} < --slots {args.slots}: the server cannot be kept full",
              file=sys.stderr)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every step, print the table and the targets; 1 when ``--check`` and a target is missed."""
    args = parse_args(argv)
    server_cpu, client_cpus = split_cpus(args.pin)
    placement = (f"server pinned to CPU {server_cpu}, client to {sorted(client_cpus)}" if client_cpus
                 else "no CPU pinning")
    print(f"labelloop throughput benchmark ({os.cpu_count()} CPUs; {placement})\n", flush=True)
    report = Report()
    report.rows.append(Row(f"import {BACKEND_MODULE} (warm-up)",
                           note=f"{warm_up_backend() * 1000:,.0f} ms once per process, outside the timings"))
    with tempfile.TemporaryDirectory(prefix="labelloop-bench-") as tmp, client_affinity(client_cpus):
        bench_latency_server(args, Path(tmp), server_cpu, report)
        bench_zero_latency(args, Path(tmp), server_cpu, report)
    print_report(report)
    missed = [t.name for t in report.targets if not t.met]
    if missed and args.check:
        print(f"\nmissed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
