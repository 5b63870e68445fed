"""Fixtures that start real parts: the llama.cpp OpenAI server, and a scripted fault server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from labelloop import Project
from labelloop.backends.llamacpp import embedded_model_path
from labelloop.prompt import build_prompt
from labelloop.spec import TaskSpec
from labelloop.store import Item, PredictionRecord, RunCounts, Store
from pgcluster import PostgresCluster, pg_bin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@contextmanager
def serving_smollm2(log: Path, *options: str) -> Iterator[str]:
    """A real ``python -m llama_cpp.server`` serving the bundled SmolLM2 on 127.0.0.1; its base URL."""
    port = free_port()
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()),
             "--host", "127.0.0.1", "--port", str(port), "--verbose", "False", *options],
            stdout=handle, stderr=subprocess.STDOUT)
        try:
            wait_for(f"http://127.0.0.1:{port}/v1/models", 120, process)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server for the session (``make test`` installs the package when missing)."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, monkeypatch) -> str:
    """Run the test on each store backend. On ``postgresql`` a fresh database is named by
    ``LABELLOOP_DATABASE_URL``, so every project the test opens (subprocesses too) lives there."""
    if request.param == "postgresql":
        monkeypatch.setenv("LABELLOOP_DATABASE_URL", request.getfixturevalue("postgres_cluster").database())
    else:
        monkeypatch.delenv("LABELLOOP_DATABASE_URL", raising=False)
    return request.param


@pytest.fixture(autouse=True)
def _everything_on_postgresql(request, monkeypatch) -> None:
    """``LABELLOOP_TEST_BACKEND=postgresql pytest …``: every project a test opens lives in a fresh PostgreSQL
    database (tests that open two projects in one test then share it, and fail for that reason)."""
    if os.environ.get("LABELLOOP_TEST_BACKEND") == "postgresql" and "backend" not in request.fixturenames:
        monkeypatch.setenv("LABELLOOP_DATABASE_URL", request.getfixturevalue("postgres_cluster").database())


@pytest.fixture
def store_location(backend, tmp_path) -> str | Path:
    """Where a bare :class:`Store` of this backend lives: a fresh PostgreSQL database or a SQLite file."""
    return os.environ["LABELLOOP_DATABASE_URL"] if backend == "postgresql" else tmp_path / "labelloop.db"


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory) -> Iterator[str]:
    """The chat server of the OpenAI-backend tests."""
    with serving_smollm2(tmp_path_factory.mktemp("llama") / "server.log", "--n_ctx", "4096") as url:
        yield url


class FaultServer:
    """A real HTTP server that answers chat completions by a script of faults.

    ``script`` maps the n-th request (0-based, in arrival order) to an action; others get
    ``default``. Actions: ``ok``, ``ok:<content>``, ``status:<code>``, ``status:<code>:<retry-after>``,
    ``hang:<seconds>``, ``garbage``, ``drop``, ``slow:<seconds>``, ``refuse:<code>:<option>``
    (an error whose message names an unsupported request option).
    """

    def __init__(self, default: str = "ok", content: str = '{"label": "positive"}', port: int = 0):
        self.default, self.content = default, content
        self.logprobs: list[dict] | None = None  # token logprobs to attach to every answer
        self.respond = None  # a function of the request body giving the content of an ``ok`` answer
        self.script: dict[int, str] = {}
        self.requests: list[dict] = []
        self.arrivals: list[float] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _next_action(self, body: dict) -> str:
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.script.get(index, self.default)

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def completion(self, content: str) -> bytes:
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        if self.logprobs is not None:
            choice["logprobs"] = {"content": self.logprobs}
        return json.dumps({"id": "x", "object": "chat.completion", "model": "fault", "choices": [choice],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fault"}]}).encode())

            def do_POST(self):
                body = self.body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                action = server._next_action(body)
                try:
                    self._act(action)
                finally:
                    server._done()

            def _act(self, action: str) -> None:
                kind, _, arg = action.partition(":")
                if kind == "ok":
                    content = arg or (server.respond(self.body) if server.respond else server.content)
                    self._send(200, server.completion(content))
                elif kind == "slow":
                    time.sleep(float(arg))
                    self._send(200, server.completion(server.content))
                elif kind == "status":
                    code, _, retry_after = arg.partition(":")
                    headers = {"Retry-After": retry_after} if retry_after else {}
                    self._send(int(code), json.dumps({"error": {"message": f"scripted {code}"}}).encode(), headers)
                elif kind == "refuse":
                    code, _, option = arg.partition(":")
                    message = f"{option} is not supported by this server"
                    self._send(int(code), json.dumps({"error": {"message": message}}).encode())
                elif kind == "hang":
                    time.sleep(float(arg))
                    self.close_connection = True
                elif kind == "garbage":
                    self._send(200, b"<html>not json at all")
                elif kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _send(self, code: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.close()


def make_project(root: Path, texts: list[str], template: str = "sentiment") -> Project:
    """A project from a bundled template with ``texts`` ingested (ids t000, t001, ...)."""
    project = Project.init(root, template=template)
    data = root / "items.jsonl"
    data.write_text("".join(json.dumps({"id": f"t{i:03d}", "text": t}, ensure_ascii=False) + "\n"
                            for i, t in enumerate(texts)), encoding="utf-8")
    project.ingest(data, id_field="id")
    return project


@pytest.fixture
def sentiment_project(tmp_path) -> Iterator[Project]:
    texts = ["Loved it, works perfectly.", "Terrible, broke on day one.", "It is a phone.",
             "Great value and fast shipping.", "Never again, rude staff.", "Arrived on Tuesday."]
    project = make_project(tmp_path / "proj", texts)
    yield project
    project.close()


MODEL = "qwen-test"  # the model name stores built by build_store record


@dataclass
class Case:
    """One item and what happened to it: a model answer (route, output, confidence) and a person's answer."""

    id: str
    text: str
    route: str | None = None
    output: Any = None
    confidence: float | None = None
    human: dict[str, Any] | None = None
    annotator: str = "alice"
    fields: dict[str, Any] = field(default_factory=dict)


def build_store(path: Path, spec: TaskSpec, cases: list[Case]) -> Store:
    """A store holding ``cases``, written through the store's public API as a labeling run would."""
    store = Store.open(path)
    with store.transaction():
        store.add_items([Item(c.id, c.text, c.fields, f"h-{c.id}") for c in cases])
    prompt = build_prompt(spec)
    store.save_prompt(prompt.version, list(prompt.shared), spec.prompt.item_template, spec.output_schema())
    run = store.start_run(labeler="llm", backend="openai", model=MODEL, params={}, prompt_version=prompt.version,
                          job_key="job", items_planned=len(cases), pid=os.getpid())
    predictions = [PredictionRecord(c.id, "llm", "job", f"h-{c.id}", prompt.version, MODEL,
                                    "failed" if c.route == "failed" else "ok", output=c.output,
                                    confidence=c.confidence, route=c.route)
                   for c in cases if c.route is not None]
    store.save_predictions(run, predictions, RunCounts(items_done=len(predictions)))
    for case in cases:
        if case.human is not None:
            store.add_annotation(case.id, case.annotator, case.human, "correct", None)
    return store
