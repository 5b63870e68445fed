"""What ``simulate`` found (:class:`Replay`) and its report: what each accuracy costs with the guarantee and
without it (PNG), and an HTML page with the tables."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment

from .simulate import SimulationResult

_PAGE = Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>labelloop simulation</title>
<style>body { font: 14px system-ui, sans-serif; margin: 2em; max-width: 70em; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ddd; padding: 4px 8px; }
td { text-align: right; } td.name { text-align: left; }</style></head><body>
<h1>How much human work each accuracy costs</h1>
<p>{{ replay.items }} gold items; {{ "the LLM labeled every item (" ~ replay.llm_calls ~ " calls), its accuracy "
   ~ ("%.1f%%" % (100 * replay.llm_accuracy)) if replay.llm_only else "no LLM: the small model alone" }}.
   Effort is the share of items a person touched; the flywheel's is guaranteed: its dataset accuracy reaches the
   target with {{ "%.0f%%" % (100 * replay.level) }} confidence. The oracle baselines stop the moment the truth
   says the target is reached, which no real project can know: the gap is the price of the guarantee.</p>
<ul>{% for line in lines %}<li>{{ line }}</li>{% endfor %}</ul>
<table><thead><tr><th>target</th>{% for name in methods %}<th>{{ name }}</th>{% endfor %}
<th>everything by hand</th></tr></thead><tbody>
{% for row in summary %}<tr><td class="name">{{ row.target }}</td>{% for cell in row.cells %}<td>{{ cell }}</td>
{% endfor %}<td>100%</td></tr>{% endfor %}
</tbody></table>
<img alt="effort and dataset accuracy of each method; coverage-accuracy curve" src="data:image/png;base64,{{ png }}">
{% if choices %}<h2>The small model</h2>
<table><thead><tr><th>reviewed items</th><th>chosen (cross-validated accuracy)</th></tr></thead><tbody>
{% for c in choices %}<tr><td>{{ c.reviewed }}</td><td class="name">{{ c.chosen }}
({{ "%.3f"|format(c.scores[c.chosen].accuracy) }})</td></tr>{% endfor %}</tbody></table>{% endif %}
<h2>Rounds</h2>
<table><thead><tr>{% for key in round_keys %}<th>{{ key }}</th>{% endfor %}</tr></thead><tbody>
{% for r in replay.flywheel.rounds %}<tr>{% for key in round_keys %}<td>{{ r.get(key, "") }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></body></html>
""")


@dataclass
class Replay:
    """What ``simulate`` found, and where the report went: the flywheel and, on the same items, the baselines
    (``random``: random batches; ``llm_only``: the LLM alone, when there is one)."""

    flywheel: SimulationResult
    llm_only: SimulationResult | None
    targets: list[float]
    items: int
    llm_calls: int = 0
    llm_accuracy: float | None = None
    files: list[str] = field(default_factory=list)
    random: SimulationResult | None = None
    level: float = 0.9

    def effort_lines(self) -> list[str]:
        """One line per target, e.g. ``effort to 95%: 23.4% of items, guaranteed at 90% (…)``."""
        lines = []
        for target in self.targets:
            best = self.flywheel.best(target)
            if best is None:
                lines.append(f"effort to {target:.0%}: 100.0% of items (no threshold could be guaranteed)")
                continue
            lines.append(
                f"effort to {target:.0%}: {best.effort:.1%} of items, guaranteed at {self.level:.0%} (dataset"
                f" accuracy {best.dataset_accuracy:.1%}; {best.reviewed} reviewed in {best.round} rounds, then"
                f" {best.draws} drawn to certify; {best.accepted} labels of the {best.labeler} accepted at"
                f" {_pct(best.accepted_accuracy)} accuracy, {best.accepted_by_small} of them by the small model alone)"
            )
        return lines

    def certified(self, target: float) -> dict[str, float] | None:
        """The flywheel's effort and dataset accuracy for ``target`` (None: everything by hand)."""
        best = self.flywheel.best(target)
        return {"effort": best.effort, "dataset_accuracy": best.dataset_accuracy} if best is not None else None

    def baselines(self, target: float) -> dict[str, dict[str, float] | None]:
        """Each baseline's effort and dataset accuracy for ``target`` (None: it never got there)."""
        found: dict[str, dict[str, float] | None] = {
            "active learning, oracle-stopped": self.flywheel.oracle.get(target)
        }
        if self.random is not None:
            found["random batches, oracle-stopped"] = self.random.oracle.get(target)
        if self.llm_only is not None:
            best = self.llm_only.best(target)
            found["LLM-only routing"] = (
                {"effort": best.effort, "dataset_accuracy": best.dataset_accuracy} if best is not None else None
            )
        return found

    def effort_curve(self) -> dict[str, Any]:
        """Per method (the guaranteed flywheel, each baseline, by hand), the effort and dataset accuracy reached
        for each target: what the project keeps of a simulation (the report draws it)."""
        methods: dict[str, list[dict[str, float]]] = {"labelloop (guaranteed)": [], "everything by hand": []}
        for target in self.targets:
            found = {"labelloop (guaranteed)": self.certified(target), **self.baselines(target),
                     "everything by hand": {"effort": 1.0, "dataset_accuracy": 1.0}}  # fmt: skip
            for method, point in found.items():
                if point is not None:
                    methods.setdefault(method, []).append({"target": target, **point})
        return {"items": self.items, "level": self.level, "targets": self.targets, "methods": methods}

    def baseline_lines(self) -> list[str]:
        """One line per target with the baselines, e.g. ``baselines for 95%: active learning, oracle-stopped
        31.0% (dataset accuracy 95.2%), …``."""
        lines = []
        for target in self.targets:
            parts = [f"{name} {_cost(found)}" for name, found in self.baselines(target).items()]
            lines.append(f"baselines for {target:.0%}: " + ", ".join([*parts, "by hand 100%"]))
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "targets": self.targets,
            "level": self.level,
            "llm_calls": self.llm_calls,
            "llm_accuracy": self.llm_accuracy,
            "flywheel": self.flywheel.to_dict(),
            "baselines": {str(t): self.baselines(t) for t in self.targets},
            "random": self.random.to_dict() if self.random else None,
            "llm_only": self.llm_only.to_dict() if self.llm_only else None,
            "files": self.files,
        }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _cost(found: dict[str, float] | None) -> str:
    if found is None:
        return "100% (never reached)"
    return f"{found['effort']:.1%} (dataset accuracy {found['dataset_accuracy']:.1%})"


def write_simulation_report(replay: Replay, out: Path) -> list[str]:
    """Write ``curves.png``, ``report.html`` and ``simulation.json`` into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    png = out / "curves.png"
    _plot(replay, png)
    methods = ["labelloop (guaranteed)", *replay.baselines(replay.targets[0])]
    summary = [
        {"target": f"{t:.0%}", "cells": [_cost(c) for c in (replay.certified(t), *replay.baselines(t).values())]}
        for t in replay.targets
    ]
    round_keys = list(dict.fromkeys(key for r in replay.flywheel.rounds for key in r))
    html = out / "report.html"
    html.write_text(
        _PAGE.render(
            replay=replay,
            lines=replay.effort_lines() + replay.baseline_lines(),
            methods=methods,
            summary=summary,
            choices=replay.flywheel.small_model.get("choices", []),
            round_keys=round_keys,
            png=base64.b64encode(png.read_bytes()).decode("ascii"),
        ),
        encoding="utf-8",
    )
    data = out / "simulation.json"
    data.write_text(json.dumps(replay.to_dict(), indent=1, default=float), encoding="utf-8")
    return [str(png), str(html), str(data)]


def _plot(replay: Replay, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (effort, coverage) = plt.subplots(1, 2, figsize=(12, 5))
    markers = iter("o^sDvP")
    for method in ["labelloop (guaranteed)", *replay.baselines(replay.targets[0])]:
        points = []
        for target in replay.targets:
            found = replay.certified(target) if method.startswith("labelloop") else replay.baselines(target).get(method)
            if found is not None:
                points.append((found["effort"], found["dataset_accuracy"]))
        if points:
            effort.plot([x for x, _ in points], [y for _, y in points], next(markers), linestyle="", label=method)
    effort.plot([1.0], [1.0], "ks", label="everything by hand")
    for target in replay.targets:
        effort.axhline(target, color="grey", linewidth=0.6, linestyle=":")
    effort.set(
        xlabel="human effort (share of items a person touched)",
        ylabel="dataset accuracy",
        title="what each target costs (dotted: the targets)",
        xlim=(0, 1.02),
        ylim=(min(replay.targets) - 0.02, 1.005),
    )
    effort.legend(fontsize=8, loc="upper left")
    for name, curve in replay.flywheel.curves.items():
        coverage.plot([x for x, _ in curve], [y for _, y in curve], label=name)
    coverage.set(
        xlabel="coverage (share of unreviewed items, most confident first)",
        ylabel="accuracy",
        title=f"coverage vs accuracy (the certified labeler for {replay.targets[0]:.0%})",
        xlim=(0, 1.02),
    )
    if replay.flywheel.curves:
        coverage.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
