"""Several servers of one model (``model.base_urls``): least-in-flight routing, each server's limit, a server
that stops is set aside and taken back once it answers again, and every call records who served it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter

from conftest import FaultServer, make_project

FAST = dict(backend="openai", model="fault", timeout=2, retries=6, backoff=0.05)


def endpoint_counts(project) -> Counter:
    rows = project.store.db.execute("SELECT endpoint, count(*) FROM llm_calls WHERE error IS NULL GROUP BY endpoint")
    return Counter(dict(rows))


def test_requests_follow_each_servers_capacity_and_respect_its_limit(tmp_path):
    servers = [FaultServer(default=f"slow:{latency}") for latency in (0.04, 0.12, 0.36)]
    project = make_project(tmp_path / "p", [f"review {i}" for i in range(300)])
    try:
        urls = [{"url": s.base_url, "concurrency": 4} for s in servers]
        result = project.label(base_urls=urls, concurrency=12, **FAST)
        assert result.counts.items_done == 300
        served = endpoint_counts(project)
        assert sum(served.values()) == 300
        fast, middle, slow = (served[s.base_url] for s in servers)
        assert fast > middle > slow and fast > 4 * slow  # capacities 100, 33 and 11 requests/s (9:3:1)
        assert [len(s.requests) for s in servers] == [fast, middle, slow]
        assert all(s.max_in_flight <= 4 for s in servers)
    finally:
        project.close()
        for server in servers:
            server.close()


def test_a_server_stopped_mid_run_is_set_aside_then_used_again_and_nothing_is_lost(tmp_path):
    servers = [FaultServer(default="slow:0.02") for _ in range(3)]
    project = make_project(tmp_path / "p", [f"review {i}" for i in range(900)])
    victim = servers[1]
    port = victim.httpd.server_address[1]
    restarted: list[FaultServer] = []

    def stop_then_restart() -> None:
        time.sleep(0.6)
        victim.default = "drop"  # open keep-alive connections are cut too, as when a server process dies
        victim.close()
        time.sleep(2.5)
        restarted.append(FaultServer(default="slow:0.02", port=port))

    chaos = threading.Thread(target=stop_then_restart)
    try:
        chaos.start()
        result = project.label(base_urls=[s.base_url for s in servers], concurrency=6, **FAST)
        chaos.join()
        assert result.counts.items_done == 900 and result.counts.items_failed == 0
        current = project.store.db.execute(
            "SELECT count(*), count(DISTINCT item_id) FROM predictions WHERE is_current = 1 AND status = 'ok'"
        ).fetchone()
        assert tuple(current) == (900, 900)
        failed_on_victim = project.store.db.execute(
            "SELECT count(*) FROM llm_calls WHERE error IS NOT NULL AND endpoint = ?", (victim.base_url,)
        ).fetchone()[0]
        assert failed_on_victim >= 1
        assert len(restarted[0].requests) > 0  # taken back after it answered a probe
        served = endpoint_counts(project)
        assert sum(served.values()) == 900 and set(served) == {s.base_url for s in servers}
    finally:
        project.close()
        for server in [*servers, *restarted]:
            with contextlib.suppress(Exception):
                server.close()
