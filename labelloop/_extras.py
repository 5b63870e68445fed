"""Optional parts (the extras in ``pyproject.toml``): import one, or fail with the one line that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtra

# torch must come first, as the CPU build: a plain requirement would pull a multi-GB CUDA build
_HINTS = {"embed": "pip install torch==2.13.0 && pip install 'labelloop[embed]'"}


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return _HINTS.get(extra, f"pip install 'labelloop[{extra}]'")


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` (a labelloop module that needs ``extra``, or the extra's own package), or raise
    :class:`MissingExtra` saying that ``what`` needs ``extra`` and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(what, extra, install_hint(extra), str(exc)) from None
