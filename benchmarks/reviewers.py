"""Many reviewers at once on the review web app: do they collide?

One run (about a minute with the defaults):

1. labels a fresh project of N items against a latency-simulating server (benchmarks/simserver.py);
   without logprobs every answer goes to people;
2. starts ``labelloop serve`` (uvicorn, a real server process) and registers R reviewers;
3. each reviewer, in a thread of its own, works as the review page does (``/next`` → the item's page, which
   holds the item → its version read from the page → ``accept`` → the next item the answer names) with no
   pause, for S seconds;
4. prints saved decisions, conflicts (409: someone else answered first) as a share of saved decisions, 5xx,
   p50/p95 latency of every request, and checks that every saved decision is exactly one answer.

Usage::

    .venv/bin/python benchmarks/reviewers.py [--items 3000] [--reviewers 20] [--seconds 30]
                                             [--backend sqlite|postgresql]

``--check`` exits with status 1 when a target is missed (conflicts <= 1% of saved, no 5xx, p95 < 500 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from labelloop import Project  # noqa: E402
from simserver import SimServerProcess  # noqa: E402
from throughput import new_project  # noqa: E402

PAGE_DATA = re.compile(r"<script type=\"application/json\" id=\"page-data\">(.*?)</script>", re.S)


def prepare(directory: Path, items: int, reviewers: int) -> tuple[Project, dict[str, str]]:
    project = new_project(directory, items)
    with SimServerProcess(slots=128, latency_ms=5) as server:
        project.label(backend="openai", base_url=server.base_url, model="sim", concurrency=64, top_logprobs=0)
    tokens = {f"r{n:02d}": project.add_reviewer(f"r{n:02d}") for n in range(reviewers)}
    return project, tokens


def reviewer_loop(base: str, token: str, until: float, out: dict) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def timed(method: str, url: str, **kwargs) -> requests.Response:
        started = time.perf_counter()
        response = session.request(method, base + url, allow_redirects=False, timeout=30, **kwargs)
        out["latencies"].append(time.perf_counter() - started)
        if response.status_code >= 500:
            out["5xx"] += 1
        return response

    target = timed("GET", "/next").headers.get("location", "/")
    while time.monotonic() < until and target != "/":
        page = timed("GET", target)
        data = json.loads(PAGE_DATA.search(page.text).group(1))
        decision = timed("POST", f"/api/items/{data['item_id']}/decision",
                         json={"action": "accept", "version": data["version"]})
        if decision.status_code == 409:
            out["conflicts"] += 1
            target = timed("GET", "/next").headers.get("location", "/")
        elif decision.status_code == 200:
            out["saved"] += decision.json()["saved"]
            target = decision.json()["next"]  # where the page goes next, as the review page's script does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="labelloop-reviewers-"))
    cluster = None
    env = dict(os.environ)
    if args.backend == "postgresql":
        from pgcluster import PostgresCluster

        cluster = PostgresCluster()
        env["LABELLOOP_DATABASE_URL"] = os.environ["LABELLOOP_DATABASE_URL"] = cluster.database()
    try:
        project, tokens = prepare(workdir / "p", args.items, args.reviewers)
        project.close()
        port = 8400 + os.getpid() % 500
        server = subprocess.Popen([sys.executable, "-m", "labelloop", "serve", "--project", str(project.root),
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/login", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "labelloop serve did not start"
                time.sleep(0.2)
        out = {"latencies": [], "5xx": 0, "conflicts": 0, "saved": 0}
        until = time.monotonic() + args.seconds
        threads = [threading.Thread(target=reviewer_loop, args=(base, token, until, out)) for token in tokens.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        server.terminate()
        server.wait(10)
        with Project(project.root) as done:
            answers = done.store.db.execute(
                "SELECT count(*), count(DISTINCT item_id) FROM annotations WHERE is_current = 1").fetchone()
    finally:
        if cluster is not None:
            cluster.stop()
    latencies = sorted(out["latencies"])
    p95 = latencies[int(0.95 * (len(latencies) - 1))] * 1000
    p50 = statistics.median(latencies) * 1000
    share = out["conflicts"] / max(1, out["saved"])
    print(f"{args.reviewers} reviewers following /next for {args.seconds:g} s on {args.backend} ({args.items} items)")
    print(f"  saved decisions {out['saved']:,}, conflicts {out['conflicts']:,} ({share:.2%} of saved), "
          f"5xx {out['5xx']}, requests {len(latencies):,}, latency p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    print(f"  answers stored {answers[0]:,} on {answers[1]:,} items (saved decisions: {out['saved']:,})")
    met = share <= 0.01 and out["5xx"] == 0 and p95 < 500 and answers[0] == out["saved"]
    print(f"  targets (conflicts <= 1% of saved, no 5xx, p95 < 500 ms, one answer per decision): "
          f"{'met' if met else 'MISSED'}")
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
