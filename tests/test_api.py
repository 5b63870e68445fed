"""The public surface changes only on purpose: ``__all__`` is exactly what the README promises."""

from __future__ import annotations

import re
from pathlib import Path

import labelloop

README = Path(__file__).resolve().parents[1] / "README.md"


def test_all_matches_the_names_the_readme_documents():
    text = README.read_text(encoding="utf-8")
    section = text.split("The public names (`labelloop.__all__`):", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"`([A-Za-z_]+)`", section)
    assert sorted(documented) == sorted(labelloop.__all__)
    assert len(documented) == len(set(documented))


def test_every_public_name_exists_and_has_a_docstring():
    for name in labelloop.__all__:
        obj = getattr(labelloop, name)
        assert obj.__doc__, name
