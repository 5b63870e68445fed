"""The one seam between labelloop and a model: ``Backend.complete``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import BackendError


@dataclass(frozen=True)
class CompletionRequest:
    """What the engine asks a backend for: chat messages, an output schema, decoding parameters."""

    messages: list[dict[str, str]]
    json_schema: dict[str, Any] | None = None
    temperature: float = 0.0
    max_tokens: int = 256
    top_logprobs: int = 0
    seed: int | None = None


@dataclass
class CompletionResponse:
    """A backend's answer in the OpenAI chat-completions shape, raw body kept for the log."""

    text: str
    raw: str
    body: dict[str, Any] = field(repr=False)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    status_code: int | None = 200
    endpoint: str | None = None  # which server answered (several: model.base_urls)

    @property
    def token_logprobs(self) -> list[dict[str, Any]] | None:
        """Per-token logprobs (OpenAI ``logprobs.content``) when the backend returned them."""
        logprobs = self.body["choices"][0].get("logprobs") or {}
        return logprobs.get("content")


@runtime_checkable
class Backend(Protocol):
    """A model that answers chat requests. Use as ``async with backend:`` around calls."""

    name: str

    @property
    def model_id(self) -> str:
        """What identifies the model's answers (part of every cache key)."""

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Answer one request; raise :class:`BackendError` saying whether a retry may help."""

    async def __aenter__(self) -> Backend: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def response_from_body(raw: str, body: Any, status_code: int | None = 200) -> CompletionResponse:
    """Read an OpenAI-style chat completion body; a body of another shape is a retryable error."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise BackendError(
            f"response is not a chat completion: {raw[:200]!r}", retryable=True, status=status_code, body=raw
        ) from None
    usage = body.get("usage") or {}
    return CompletionResponse(
        text=text,
        raw=raw,
        body=body,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        finish_reason=choice.get("finish_reason"),
        status_code=status_code,
    )
