"""A comparison as one self-contained HTML page (no network): each variant's scores, routing and cost, the
per-label table where the kind has labels, and each pair's verdict. Every text is escaped."""

from __future__ import annotations

from pathlib import Path

import jinja2

from .._files import atomic_output
from .run import Comparison

_PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>labelloop compare: {{ c.gold }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: .3em .6em; }
th { background: #f3f3f3; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.win { color: #05600d; font-weight: 600; } .same { color: #555; }
</style></head><body>
<h1>Compare on {{ c.items }} gold items</h1>
<p>Gold: <code>{{ c.gold }}</code></p>
<h2>Verdicts</h2>
<ul>{% for v in c.verdicts %}
<li class="{{ 'win' if v.significant else 'same' }}">{{ v.sentence() }}</li>{% endfor %}</ul>
<h2>Variants</h2>
<table><tr><th>variant</th><th>prompt</th><th>model</th><th>metric</th><th>value</th><th>right</th>
<th>auto-accepted</th><th>their precision</th><th>guaranteed threshold</th><th>ECE</th>
<th>tokens/item</th><th>p50 ms</th><th>p90 ms</th><th>calls now</th></tr>
{% for v in c.variants %}<tr><td>{{ v.name }}</td><td><code>{{ v.prompt_version }}</code></td><td>{{ v.model }}</td>
<td>{{ v.quality.metric }}</td><td class="n">{{ '%.3f' % v.quality.value }}</td>
<td class="n">{{ v.quality.correct | sum }} / {{ c.items }}</td>
<td class="n">{{ pct(v.routing.accepted_share) }}</td><td class="n">{{ pct(v.routing.accepted_precision) }}</td>
<td class="n">{{ num(v.routing.guaranteed_threshold) }}</td><td class="n">{{ num(v.routing.ece) }}</td>
<td class="n">{{ '%.0f' % (v.cost.prompt_tokens_per_item + v.cost.completion_tokens_per_item) }}</td>
<td class="n">{{ num(v.cost.latency_p50_ms, '%.0f') }}</td><td class="n">{{ num(v.cost.latency_p90_ms, '%.0f') }}</td>
<td class="n">{{ v.cost.calls_now }}</td></tr>{% endfor %}</table>
{% for v in c.variants if v.quality.details.per_label %}<h3>{{ v.name }}: per label</h3>
<table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>
{% for name, s in v.quality.details.per_label.items() %}<tr><td>{{ name }}</td>
<td class="n">{{ '%.3f' % s.precision }}</td><td class="n">{{ '%.3f' % s.recall }}</td>
<td class="n">{{ '%.3f' % s.f1 }}</td><td class="n">{{ s.support }}</td></tr>
{% endfor %}</table>{% endfor %}
</body></html>
""")


def _num(value: float | None, fmt: str = "%.3f") -> str:
    return "–" if value is None else fmt % value


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def write_page(comparison: Comparison, path: str | Path) -> Path:
    """Write the comparison's page to ``path``."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(_PAGE.render(c=comparison, num=_num, pct=_pct), encoding="utf-8")
    return path
