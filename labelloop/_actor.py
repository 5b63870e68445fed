"""Who acts, for the audit log, when nobody says: the operating-system user."""

from __future__ import annotations

import getpass


def default_actor() -> str:
    """The OS user's name (``--actor`` on the command line and ``actor=`` in the library override it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a container user)
        return "unknown"


def actor_or_default(actor: str | None) -> str:
    return actor if actor else default_actor()
