"""Confidence: how sure each labeler is of each answer, in [0, 1], per item and per field.

- :mod:`.logprobs`: from the token logprobs of the model's own JSON answer (no extra call);
- :mod:`.tokens`: placing those tokens on the answer's bytes, and each field's value in them;
- :mod:`.extra_calls`: what costs extra calls: self-consistency samples, a judge's rating.
"""

from __future__ import annotations

from .logprobs import score
from .result import NO_CONFIDENCE, UNAVAILABLE, Confidence

__all__ = ["NO_CONFIDENCE", "UNAVAILABLE", "Confidence", "score"]
