"""Any OpenAI-compatible chat server: vLLM, SGLang, Ollama, llama.cpp server, OpenAI.

Uses aiohttp rather than httpx or the openai SDK (which rides on httpx): measured on our 2-core
machines at 64-256 connections, httpx.AsyncClient spent about 10 ms of CPU per request (a
ceiling near 90 requests/s), aiohttp about 0.2 ms; vLLM wants hundreds of requests in flight.
benchmarks/throughput.py measures the whole client against a simulated server.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from ..errors import BackendError, BackendUnavailable
from ..spec import ModelSettings
from .base import CompletionRequest, CompletionResponse, response_from_body
from .endpoints import SET_ASIDE_AFTER, Endpoint, Endpoints

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Ways to ask for schema-guided output, most precise first; a server that refuses one gets the next.
FORMAT_MODES = ("json_schema", "json_object_schema", "json_object", "none")


class OpenAIBackend:
    """Chat completions over HTTP with JSON-schema output and token logprobs where supported."""

    name = "openai"

    def __init__(self, settings: ModelSettings):
        self.settings = settings
        urls = [(e.url, e.concurrency or settings.concurrency) for e in settings.base_urls] or [
            (settings.base_url or DEFAULT_BASE_URL, settings.concurrency)
        ]
        self.endpoints = Endpoints(urls)
        self.base_url = self.endpoints.all[0].url
        self._model = settings.model
        self._format_mode = FORMAT_MODES[0]
        self._send_logprobs = True
        self._session: aiohttp.ClientSession | None = None

    @property
    def model_id(self) -> str:
        if self._model is None:
            raise BackendUnavailable("model not known yet: give --model or open the backend first")
        return self._model

    async def __aenter__(self) -> OpenAIBackend:
        connector = aiohttp.TCPConnector(limit=sum(e.limit for e in self.endpoints.all), ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            json_serialize=lambda v: json.dumps(v, ensure_ascii=False),
        )
        try:
            await self._check_server()
        except BaseException:
            await self._session.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key_env:
            key = os.environ.get(self.settings.api_key_env)
            if not key:
                raise BackendUnavailable(
                    f"environment variable {self.settings.api_key_env} (model.api_key_env) is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def _check_server(self) -> None:
        """Fail fast, in one line, when no server is reachable; learn the model if none was named. With several
        endpoints, those unreachable now are set aside (and probed again later)."""
        errors = []
        for endpoint in self.endpoints.all:
            try:
                await self._check_endpoint(endpoint.url)
            except BackendUnavailable as exc:
                if len(self.endpoints.all) == 1 or "cannot reach" not in str(exc):
                    raise
                errors.append(str(exc))
                for _ in range(SET_ASIDE_AFTER):
                    self.endpoints.failed(endpoint)
        if len(errors) == len(self.endpoints.all):
            raise BackendUnavailable("; ".join(errors))

    async def _check_endpoint(self, base_url: str) -> None:
        url = f"{base_url}/models"
        assert self._session is not None, "opened by __aenter__"
        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=min(self.settings.timeout, 30))
            ) as resp:
                text = await resp.text()
                if resp.status in (401, 403):
                    raise BackendUnavailable(f"{url}: HTTP {resp.status}: the server refused the API key")
                if resp.status != 200:
                    if self._model is None:
                        raise BackendUnavailable(f"{url}: HTTP {resp.status}; give the model name with --model")
                    return
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            raise BackendUnavailable(f"cannot reach {base_url}: {_describe(exc)}") from None
        if self._model is None:
            try:
                self._model = json.loads(text)["data"][0]["id"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise BackendUnavailable(f"{url}: lists no model; give the model name with --model") from None

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        while True:
            format_mode, send_logprobs = self._format_mode, self._send_logprobs
            status, raw, retry_after, endpoint = await self._post(self._body(request))
            if status == 200:
                response = _parse_ok(raw, endpoint)
                response.endpoint = endpoint
                return response
            if status in (400, 422, 500) and self._downgrade(raw, format_mode, send_logprobs):
                continue
            raise _http_error(status, raw, retry_after, endpoint)

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.top_logprobs > 0 and self._send_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = request.top_logprobs
        if request.json_schema is not None:
            response_format = _response_format(self._format_mode, request.json_schema)
            if response_format is not None:
                body["response_format"] = response_format
        return body

    async def _post(self, body: dict[str, Any]) -> tuple[int, str, float | None, str]:
        assert self._session is not None, "use the backend inside 'async with'"
        async with self.endpoints.use() as endpoint:
            try:
                async with self._session.post(f"{endpoint.url}/chat/completions", json=body) as resp:
                    raw = await resp.text()
                    self._judge(endpoint, resp.status)
                    return resp.status, raw, _retry_after(resp.headers.get("Retry-After")), endpoint.url
            except TimeoutError:
                self.endpoints.failed(endpoint)
                raise BackendError(
                    f"no answer within {self.settings.timeout:g} s", retryable=True, endpoint=endpoint.url
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                self.endpoints.failed(endpoint)
                raise BackendError(_describe(exc), retryable=True, endpoint=endpoint.url) from None

    def _judge(self, endpoint: Endpoint, status: int) -> None:
        """A 5xx counts against the server; any other answer shows it alive (a 429 only says it is busy)."""
        if status >= 500:
            self.endpoints.failed(endpoint)
        elif status != 429:
            self.endpoints.succeeded(endpoint)

    def _downgrade(self, raw: str, format_mode: str, sent_logprobs: bool) -> bool:
        """After an error about an unsupported option, switch to a form the server accepts.

        vLLM and OpenAI answer 400, FastAPI-based servers 422, llama-cpp-python's server 500.
        """
        lowered = raw.lower()
        if "logprobs" in lowered and sent_logprobs:
            self._send_logprobs = False
            return True
        if ("response_format" in lowered or "json_schema" in lowered) and format_mode != "none":
            if self._format_mode == format_mode:  # not already moved on by a concurrent request
                self._format_mode = FORMAT_MODES[FORMAT_MODES.index(format_mode) + 1]
            return True
        return False


def _response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def _parse_ok(raw: str, endpoint: str) -> CompletionResponse:
    try:
        body = json.loads(raw)
    except ValueError:
        raise BackendError(
            f"server answered 200 with a body that is not JSON: {raw[:120]!r}",
            retryable=True,
            status=200,
            body=raw,
            endpoint=endpoint,
        ) from None
    return response_from_body(raw, body)


def _http_error(status: int, raw: str, retry_after: float | None, endpoint: str) -> BackendError:
    detail = raw.strip().replace("\n", " ")[:300]
    return BackendError(
        f"HTTP {status}: {detail}",
        retryable=status in RETRYABLE_STATUS,
        status=status,
        retry_after=retry_after,
        body=raw,
        endpoint=endpoint,
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
