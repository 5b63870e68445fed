"""Who labels: the names under which predictions are stored, in one place.

Every labeler answers the same way (an output plus a confidence, stored as a prediction), so
calibration, routing, agreement and exports treat them alike; they differ only by name.
"""

from __future__ import annotations

LLM = "llm"  # the task's model; ``label --as NAME`` stores another model's answers under NAME
SMALL = "small"  # the small model trained on people's labels (labelloop.learn.small)
COMBINED = "combined"  # the LLM and the small model as one labeler (labelloop.learn.combine)
DUPLICATES = "duplicates"  # a decided label proposed to the other members of a duplicate group (labelloop.dedup)

__all__ = ["COMBINED", "DUPLICATES", "LLM", "SMALL"]
