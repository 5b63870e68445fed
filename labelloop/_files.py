"""Writing files whole: beside the destination first, moved into place only when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A path beside ``out`` to write to; it replaces ``out`` when the block succeeds, else vanishes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        tmp = work / out.name
        yield tmp
        if tmp.is_dir() and out.exists():  # a directory cannot replace another: move the old one aside
            os.replace(out, work / "previous")
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
