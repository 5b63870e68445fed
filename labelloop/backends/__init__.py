"""Model backends, looked up by name from the ``labelloop.backends`` entry points.

Built-in backends are registered through the same entry points as plugins, so a package
can add one (e.g. ``mybackend = "pkg.module:MyBackend"``) without forking labelloop.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import SpecError
from ..spec import ModelSettings
from .base import Backend, CompletionRequest, CompletionResponse

ENTRY_POINT_GROUP = "labelloop.backends"

__all__ = ["Backend", "CompletionRequest", "CompletionResponse", "available_backends", "create_backend"]


def available_backends() -> list[str]:
    """Names of every registered backend."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def create_backend(settings: ModelSettings) -> Backend:
    """Build the backend that ``settings.backend`` names."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == settings.backend]
    if not found:
        raise SpecError(
            "settings",
            None,
            "model.backend",
            f"unknown backend {settings.backend!r}; available: {', '.join(available_backends())}",
        )
    return found[0].load()(settings)
