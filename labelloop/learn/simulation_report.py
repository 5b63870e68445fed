"""What ``simulate`` found (:class:`Replay`) and its report: effort-accuracy and coverage-accuracy curves (PNG)
and an HTML page with the tables."""

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
   ~ ("%.1f%%" % (100 * replay.llm_accuracy)) if replay.llm_only else "no LLM: the small model alone" }}.</p>
<ul>{% for line in lines %}<li>{{ line }}</li>{% endfor %}</ul>
<table><thead><tr><th>target</th><th>labelloop (flywheel)</th>
{%- if replay.llm_only %}<th>LLM-only routing</th>{% endif %}
<th>everything by hand</th></tr></thead><tbody>
{% for row in summary %}<tr><td class="name">{{ row.target }}</td><td>{{ row.flywheel }}</td>
{% if replay.llm_only %}<td>{{ row.llm_only }}</td>{% endif %}<td>100%</td></tr>{% endfor %}
</tbody></table>
<img alt="effort-accuracy and coverage-accuracy curves" src="data:image/png;base64,{{ png }}">
<h2>Rounds</h2>
<table><thead><tr><th>round</th><th>reviewed</th><th>target</th><th>auto-accepted</th><th>by the small model</th>
<th>their accuracy</th><th>effort</th><th>dataset accuracy</th></tr></thead><tbody>
{% for p in replay.flywheel.points %}<tr><td>{{ p.round }}</td><td>{{ p.reviewed }}</td><td>{{ p.target }}</td>
<td>{{ p.accepted }}</td><td>{{ p.accepted_by_small }}</td>
<td>{{ "%.3f"|format(p.accepted_accuracy) if p.accepted_accuracy is not none else "–" }}</td>
<td>{{ "%.3f"|format(p.effort) }}</td><td>{{ "%.3f"|format(p.dataset_accuracy) }}</td></tr>{% endfor %}
</tbody></table></body></html>
""")


@dataclass
class Replay:
    """What ``simulate`` found, and where the report went."""

    flywheel: SimulationResult
    llm_only: SimulationResult | None
    targets: list[float]
    items: int
    llm_calls: int = 0
    llm_accuracy: float | None = None
    files: list[str] = field(default_factory=list)

    def effort_lines(self) -> list[str]:
        """One line per target, e.g. ``effort to 95%: 23.4% of items``."""
        lines = []
        for target in self.targets:
            best = self.flywheel.best(target)
            if best is None:
                lines.append(f"effort to {target:.0%}: 100.0% of items (no threshold could be guaranteed)")
                continue
            lines.append(
                f"effort to {target:.0%}: {best.effort:.1%} of items (round {best.round}, dataset accuracy"
                f" {best.dataset_accuracy:.1%}, auto-accepted {best.accepted} at {_pct(best.accepted_accuracy)}"
                f" accuracy, {best.accepted_by_small} by the small model alone: LLM calls saved)"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "targets": self.targets,
            "llm_calls": self.llm_calls,
            "llm_accuracy": self.llm_accuracy,
            "flywheel": self.flywheel.to_dict(),
            "llm_only": self.llm_only.to_dict() if self.llm_only else None,
            "files": self.files,
        }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def write_simulation_report(replay: Replay, out: Path) -> list[str]:
    """Write ``curves.png``, ``report.html`` and ``simulation.json`` into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    png = out / "curves.png"
    _plot(replay, png)
    summary = [
        {
            "target": f"{t:.0%}",
            "flywheel": _effort(replay.flywheel, t),
            "llm_only": _effort(replay.llm_only, t) if replay.llm_only else "",
        }
        for t in replay.targets
    ]
    html = out / "report.html"
    html.write_text(
        _PAGE.render(
            replay=replay,
            lines=replay.effort_lines(),
            summary=summary,
            png=base64.b64encode(png.read_bytes()).decode("ascii"),
        ),
        encoding="utf-8",
    )
    data = out / "simulation.json"
    data.write_text(json.dumps(replay.to_dict(), indent=1, default=float), encoding="utf-8")
    return [str(png), str(html), str(data)]


def _effort(result: SimulationResult, target: float) -> str:
    best = result.best(target)
    return "100% (no guarantee)" if best is None else f"{best.effort:.1%} (accuracy {best.dataset_accuracy:.1%})"


def _plot(replay: Replay, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (effort, coverage) = plt.subplots(1, 2, figsize=(12, 5))
    for result, style in ((replay.flywheel, "-"), (replay.llm_only, "--")):
        if result is None:
            continue
        for target in replay.targets:
            points = sorted((p.effort, p.dataset_accuracy) for p in result.points if p.target == target)
            effort.plot(
                [x for x, _ in points],
                [y for _, y in points],
                style,
                marker=".",
                label=f"{result.strategy}, thresholds for {target:.0%}",
            )
    effort.plot([1.0], [1.0], "ks", label="everything by hand")
    for target in replay.targets:
        effort.axhline(target, color="grey", linewidth=0.6, linestyle=":")
    effort.set(
        xlabel="human effort (share of items a person touched)",
        ylabel="dataset accuracy",
        title="effort vs accuracy (a point per round)",
        xlim=(0, 1.02),
    )
    effort.legend(fontsize=8, loc="lower right")
    for name, curve in replay.flywheel.curves.items():
        coverage.plot([x for x, _ in curve], [y for _, y in curve], label=name)
    coverage.set(
        xlabel="coverage (share of unreviewed items, most confident first)",
        ylabel="accuracy",
        title=f"coverage vs accuracy (the cheapest round for {replay.targets[0]:.0%})",
        xlim=(0, 1.02),
    )
    if replay.flywheel.curves:
        coverage.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
