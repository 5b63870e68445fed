"""A latency-simulating OpenAI-compatible chat server, its launcher, and a cheap load client.

The server imitates a batching inference server such as vLLM: it has ``slots`` parallel
slots; a chat completion takes a slot, holds it ``latency_ms`` milliseconds, then answers a
valid ``chat.completion`` whose message content is one of the configured answers. Requests
beyond ``slots`` wait for a free slot, so its capacity is ``slots / latency`` requests per
second. It is a minimal asyncio.Protocol HTTP/1.1 keep-alive server: about 12 µs of CPU per
request, so on its own core it answers tens of thousands of requests per second and is not the
bottleneck of a client benchmark (benchmarks/throughput.py measures this every run).

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /sim/stats`` (requests
served, the most slots taken and requests waiting at once, the process's CPU seconds).

Run it as a script (it binds 127.0.0.1 only, prints ``LISTENING <port>`` once it accepts
connections, and exits when its stdin closes or after ``--max-seconds``)::

    python benchmarks/simserver.py --slots 128 --latency-ms 200

or from Python with :class:`SimServerProcess`, which runs it in a separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 64 * 1024
DEFAULT_ANSWERS = ('{"label": "positive"}', '{"label": "negative"}', '{"label": "neutral"}')
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required",
            429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}


# -- the server ------------------------------------------------------------------------------

@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    body: bytes
    keep_alive: bool


@dataclass
class ServerStats:
    """What the server did; served as JSON at ``/sim/stats``."""

    completions: int = 0
    failed: int = 0  # requests answered 429 or 500 (--fail-every)
    in_system: int = 0
    busy_slots: int = 0
    max_busy_slots: int = 0
    waiting: int = 0
    max_waiting: int = 0
    connections: int = 0
    max_connections: int = 0
    first_connection: float | None = None  # time.time() of the first connection accepted
    first_arrival: float | None = None  # time.time() of the first chat completion request
    first_full: float | None = None  # time.time() when every slot was first busy
    last_answer: float | None = None  # time.time() of the latest chat completion answer

    def as_json(self) -> bytes:
        data = {**self.__dict__, "cpu_s": time.process_time()}
        return json.dumps(data).encode()


class SimServer:
    """The simulated model: slots, latency and the answer bodies.

    Slots are kept on a virtual clock: a request takes the slot that frees first and holds it
    from ``max(arrival, slot free)`` for exactly ``latency`` seconds; its answer is written at
    that moment. Event-loop delays therefore postpone an answer but never the next request's
    start, so the capacity is exactly ``slots / latency``. (An asyncio.Semaphore around
    ``asyncio.sleep`` lost about 3 ms per cycle to scheduling, 1.7 % of the capacity at
    128 slots / 200 ms, which would have been charged to the client.)
    """

    def __init__(self, slots: int, latency_ms: float, model: str, answers: Sequence[str], fail_every: int = 0):
        self.latency_s = latency_ms / 1000.0
        self.fail_every, self.arrivals = fail_every, 0  # every fail_every-th request fails: 429, then 500, ...
        self.slot_count = slots
        self._slots_free_at = [0.0] * slots  # a heap: when each slot is next free
        self.model = model
        self.stats = ServerStats()
        self._answers = [json.dumps(answer).encode() for answer in answers]
        self._models_body = json.dumps({"object": "list", "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "simserver"}]}).encode()

    def handle(self, conn: HttpConnection, request: Request) -> None:
        """Route one request; a chat completion answers when its slot time is over."""
        if request.method == "POST" and request.path == "/v1/chat/completions":
            self._schedule_completion(conn, request)
        elif request.method == "GET" and request.path == "/v1/models":
            conn.respond(200, self._models_body, request.keep_alive)
        elif request.method == "GET" and request.path == "/sim/stats":
            conn.respond(200, self.stats.as_json(), request.keep_alive)
        else:
            conn.respond(404, b'{"error": {"message": "not found"}}', request.keep_alive)

    def _schedule_completion(self, conn: HttpConnection, request: Request) -> None:
        if self.stats.first_arrival is None:
            self.stats.first_arrival = time.time()
        self.arrivals += 1
        if self.fail_every and self.arrivals % self.fail_every == 0:
            self.stats.failed += 1
            status = 429 if (self.arrivals // self.fail_every) % 2 else 500
            conn.respond(status, b'{"error": {"message": "simulated failure"}}', request.keep_alive)
            return
        if self.latency_s <= 0:  # zero latency: take and give back a slot at once
            conn.respond(200, self.completion_body(request.body), request.keep_alive)
            return
        loop = asyncio.get_running_loop()
        start = max(loop.time(), heapq.heappop(self._slots_free_at))
        finish = start + self.latency_s
        heapq.heappush(self._slots_free_at, finish)
        self._track(+1)
        loop.call_at(finish, self._complete, conn, request)

    def _complete(self, conn: HttpConnection, request: Request) -> None:
        self._track(-1)
        conn.respond(200, self.completion_body(request.body), request.keep_alive)

    def _track(self, change: int) -> None:
        """Count requests in the system: the first ``slots`` hold a slot, the rest wait (FIFO)."""
        stats = self.stats
        stats.in_system += change
        stats.busy_slots = min(stats.in_system, self.slot_count)
        stats.waiting = stats.in_system - stats.busy_slots
        stats.max_busy_slots = max(stats.max_busy_slots, stats.busy_slots)
        if stats.first_full is None and stats.busy_slots == self.slot_count:
            stats.first_full = time.time()
        stats.max_waiting = max(stats.max_waiting, stats.waiting)

    def completion_body(self, request_body: bytes) -> bytes:
        """A chat.completion whose content is one of the answers (chosen by the request size)."""
        self.stats.completions += 1
        self.stats.last_answer = time.time()
        content = self._answers[len(request_body) % len(self._answers)]
        prompt_tokens = max(1, len(request_body) // 4)
        completion_tokens = max(1, len(content) // 4)
        return (b'{"id":"chatcmpl-%d","object":"chat.completion","created":%d,"model":"%s",'
                b'"choices":[{"index":0,"message":{"role":"assistant","content":%s},'
                b'"logprobs":null,"finish_reason":"stop"}],'
                b'"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}'
                % (self.stats.completions, int(time.time()), self.model.encode(), content,
                   prompt_tokens, completion_tokens, prompt_tokens + completion_tokens))


class HttpConnection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies; requests are answered in order."""

    def __init__(self, server: SimServer):
        self.server = server
        self.buffer = bytearray()
        self.busy = False
        self.dispatching = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        stats = self.server.stats
        if stats.first_connection is None:
            stats.first_connection = time.time()
        stats.connections += 1
        stats.max_connections = max(stats.max_connections, stats.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.stats.connections -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._serve_buffered()

    def _serve_buffered(self) -> None:
        self.dispatching = True
        try:
            while not self.busy and self.transport is not None:
                request = self._next_request()
                if request is None:
                    return
                self.busy = True
                self.server.handle(self, request)
        finally:
            self.dispatching = False

    def _next_request(self) -> Request | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                self._fail(431)
            return None
        try:
            method, path, version, headers = _parse_head(bytes(self.buffer[:end]))
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._fail(400)
            return None
        if "chunked" in headers.get("transfer-encoding", "").lower() or length < 0:
            self._fail(411)
            return None
        total = end + 4 + length
        if len(self.buffer) < total:
            return None
        body = bytes(self.buffer[end + 4:total])
        del self.buffer[:total]
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        return Request(method, path.split("?", 1)[0], body, keep_alive)

    def respond(self, status: int, body: bytes, keep_alive: bool = True) -> None:
        """Send one response, then serve the next buffered request (if the peer is still there)."""
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return
        close = b"" if keep_alive else b"Connection: close\r\n"
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (
            status, _REASONS.get(status, "Error").encode(), len(body), close)
        self.transport.write(head + body)
        if not keep_alive:
            self.transport.close()
            return
        if self.buffer and not self.dispatching:  # an answer given later: serve what queued meanwhile
            self._serve_buffered()

    def _fail(self, status: int) -> None:
        self.busy = True
        self.respond(status, b'{"error": {"message": "bad request"}}', keep_alive=False)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, version = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return method, path, version, headers


async def serve(port: int, slots: int, latency_ms: float, model: str, answers: Sequence[str],
                max_seconds: float, fail_every: int = 0) -> None:
    """Serve on 127.0.0.1 until stdin closes or ``max_seconds`` pass."""
    loop = asyncio.get_running_loop()
    sim = SimServer(slots, latency_ms, model, answers, fail_every)
    server = await loop.create_server(lambda: HttpConnection(sim), HOST, port, backlog=4096)
    stop = loop.create_future()
    _stop_on_stdin_eof(loop, stop)
    bound_port = server.sockets[0].getsockname()[1]
    print(f"LISTENING {bound_port}", flush=True)
    try:
        await asyncio.wait_for(stop, timeout=max_seconds)
    except TimeoutError:
        print(f"simserver: stopping after --max-seconds {max_seconds:g}", file=sys.stderr)
    server.close()


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Future) -> None:
    """Stop when the parent closes our stdin (or dies), so no server outlives its benchmark."""
    fd = sys.stdin.fileno()

    def on_readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            if not stop.done():
                stop.set_result(None)

    loop.add_reader(fd, on_readable)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--slots", type=int, default=128, help="parallel slots (default 128)")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="time a request holds a slot")
    parser.add_argument("--model", default="sim")
    parser.add_argument("--answers", default=json.dumps(DEFAULT_ANSWERS),
                        help="JSON list of message contents to answer with")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="exit after this long at most")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    parser.add_argument("--fail-every", type=int, default=0, help="answer every N-th request 429 or 500 (0: never)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us: stdin EOF or SIGTERM
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    asyncio.run(serve(args.port, args.slots, args.latency_ms, args.model, json.loads(args.answers),
                      args.max_seconds, args.fail_every))


# -- the launcher ------------------------------------------------------------------------------

@dataclass
class SimServerProcess:
    """The server in a child process: ``with SimServerProcess(128, 200) as server: server.base_url``."""

    slots: int = 128
    latency_ms: float = 200.0
    cpu: int | None = None
    max_seconds: float = 600.0
    model: str = "sim"
    fail_every: int = 0
    answers: Sequence[str] = DEFAULT_ANSWERS
    startup_timeout_s: float = 15.0
    port: int = 0
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def __enter__(self) -> SimServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "--slots", str(self.slots),
                   "--latency-ms", str(self.latency_ms), "--max-seconds", str(self.max_seconds),
                   "--model", self.model, "--fail-every", str(self.fail_every),
                   "--answers", json.dumps(list(self.answers))]
        if self.cpu is not None:
            command += ["--cpu", str(self.cpu)]
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise

    def _read_port(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self.startup_timeout_s)
        line = self._proc.stdout.readline().decode() if ready else ""
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"simserver did not start (exit code {self._proc.poll()}, said {line!r})")
        return int(line.split()[1])

    def stop(self) -> None:
        """Terminate the server process and wait for it; kill it if it does not go."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stats(self) -> dict[str, Any]:
        """The server's counters (see :class:`ServerStats`) plus its CPU seconds so far."""
        with urllib.request.urlopen(f"http://{HOST}:{self.port}/sim/stats", timeout=10) as resp:
            return json.loads(resp.read())


# -- a cheap load client ------------------------------------------------------------------------

class _LoadConnection(asyncio.Protocol):
    """Sends the same request over and over on one keep-alive connection until the deadline."""

    def __init__(self, request: bytes, deadline: float, done: asyncio.Future):
        self.request, self.deadline, self.done = request, deadline, done
        self.buffer = bytearray()
        self.completed = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (length := _response_length(self.buffer)) is not None and len(self.buffer) >= length:
            del self.buffer[:length]
            self.completed += 1
            if time.perf_counter() >= self.deadline:
                self._finish()
                return
            assert self.transport is not None
            self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _finish(self) -> None:
        assert self.transport is not None
        self.transport.close()


def _response_length(buffer: bytearray) -> int | None:
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    start = buffer.find(b"Content-Length: ", 0, end) + len(b"Content-Length: ")
    return end + 4 + int(buffer[start:buffer.find(b"\r\n", start)])


async def _load(port: int, body: bytes, seconds: float, connections: int) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (HOST.encode(), port, len(body), body))
    started = time.perf_counter()
    deadline = started + seconds
    protocols, waits = [], []
    for _ in range(connections):
        done = loop.create_future()
        _, protocol = await loop.create_connection(lambda d=done: _LoadConnection(request, deadline, d), HOST, port)
        protocols.append(protocol)
        waits.append(done)
    await asyncio.wait_for(asyncio.gather(*waits), timeout=seconds + 30)
    return sum(p.completed for p in protocols), time.perf_counter() - started


def measure_capacity(port: int, body: bytes, seconds: float = 2.0, connections: int = 64) -> tuple[float, int]:
    """Chat completions per second the server at ``port`` answers to a cheap raw-socket client.

    Returns the rate and the number of requests. The client runs in this process; when it,
    not the server, is the limit, the rate is a lower bound of the server's capacity.
    """
    completed, elapsed = asyncio.run(_load(port, body, seconds, connections))
    return completed / elapsed, completed


if __name__ == "__main__":
    main()
