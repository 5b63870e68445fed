"""Pairwise agreement as a heatmap: PNG (matplotlib, extra ``agree``) or a self-contained HTML table."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment

from ..errors import InputError
from .agreement import AgreementReport

_HTML = Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>labelloop agreement</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: center; min-width: 3.5em; }
th.row { text-align: right; }
td.none { background: #f5f5f5; color: #999; }
</style></head><body>
<h1>Pairwise agreement <small>({{ metric }})</small></h1>
<p>{{ names|length }} annotators with the most items; people and models. Empty: fewer shared items than the
minimum, or undefined.</p>
<table id="heatmap"><thead><tr><th></th>{% for name in names %}<th>{{ name }}</th>{% endfor %}</tr></thead>
<tbody>{% for a in names %}<tr><th class="row">{{ a }}</th>
{% for b in names %}{% set v = matrix[a][b] %}{% if v is none %}<td class="none">–</td>{% else %}
<td style="background: {{ colour(v) }}" title="{{ a }} / {{ b }}: {{ '%.3f'|format(v) }}">{{ '%.2f'|format(v) }}</td>
{% endif %}{% endfor %}</tr>{% endfor %}</tbody></table>
</body></html>
""")


def write_heatmap(report: AgreementReport, path: str | Path, top: int = 30) -> str:
    """Write the pairwise agreement matrix of the ``top`` busiest annotators to ``path`` (.png or .html)."""
    path = Path(path)
    metric, names, matrix = _matrix(report, top)
    if path.suffix.lower() == ".html":
        path.write_text(_HTML.render(metric=metric, names=names, matrix=matrix, colour=_colour), encoding="utf-8")
    elif path.suffix.lower() == ".png":
        _write_png(path, metric, names, matrix)
    else:
        raise InputError(str(path), None, "a heatmap is written as .png or .html")
    return str(path)


def _matrix(report: AgreementReport, top: int) -> tuple[str, list[str], dict[str, dict[str, float | None]]]:
    names = [a.name for a in sorted(report.annotators, key=lambda a: -a.items)[:top]]
    metric = "span_f1" if report.pairs and "span_f1" in report.pairs[0] else "cohen_kappa"
    matrix: dict[str, dict[str, float | None]] = {a: {b: (1.0 if a == b else None) for b in names} for a in names}
    for pair in report.pairs:
        if pair["a"] in matrix and pair["b"] in matrix:
            matrix[pair["a"]][pair["b"]] = matrix[pair["b"]][pair["a"]] = pair.get(metric)
    return metric, names, matrix


def _colour(value: float) -> str:
    """Red (-1 or 0) to green (1), light enough to read the number on."""
    share = max(0.0, min(1.0, value))
    return f"hsl({int(120 * share)}, 65%, 78%)"


def _write_png(path: Path, metric: str, names: list[str], matrix: dict[str, dict[str, float | None]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        raise InputError(str(path), None, "a PNG heatmap needs matplotlib: pip install 'labelloop[agree]'") from None
    values = np.array([[np.nan if matrix[a][b] is None else matrix[a][b] for b in names] for a in names], dtype=float)
    size = max(4.0, 0.45 * len(names) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(values, cmap="RdYlGn", vmin=0.0 if metric == "span_f1" else -0.2, vmax=1.0)
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_yticks(range(len(names)), names)
    if len(names) <= 15:
        for i in range(len(names)):
            for j in range(len(names)):
                if not np.isnan(values[i, j]):
                    axes.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axes, label=metric)
    axes.set_title(f"pairwise agreement ({metric})")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
