"""The report as one self-contained HTML file: inline SVG plots and inline CSS, no script, nothing fetched.
Every text from the project (item labels, reviewer names, file names, reasons) is escaped by Jinja; the SVG
comes from matplotlib, which escapes the text it draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .._files import atomic_output
from ..monitor.batches import describe
from .facts import ProjectReport
from .plots import Plot, every_plot

_ENV = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>labelloop report: {{ r.name }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; color: #222; padding: 0 1em; }
h1 { margin-bottom: .1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .6em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .5em .8em; min-width: 9em; }
.card b { display: block; font-size: 1.35em; } .card span { color: #666; font-size: .85em; }
.alarm { color: #a40000; font-weight: 600; } .ok { color: #05600d; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-weight: 600; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .8em 0; } td, th { border: 1px solid #ccc; padding: .25em .55em; }
th { background: #f3f3f3; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #666; font-style: italic; }
</style></head><body>
<h1>{{ r.name }}</h1>
<p class="sub">a {{ r.kind }} task · report made {{ r.generated_at }} (times in UTC) · {{ r.status.database }}</p>
<div class="cards">
<div class="card"><b>{{ '{:,}'.format(r.status.items) }}</b><span>items</span></div>
<div class="card"><b>{{ pct(share('accepted')) }}</b><span>labels auto-accepted</span></div>
<div class="card"><b>{{ '{:,}'.format(r.status.routes.get('needs_review', 0)) }}</b><span>sent to people</span></div>
<div class="card"><b>{{ '{:,}'.format(r.status.calls.calls) }}</b><span>model calls</span></div>
<div class="card"><b>{{ '{:,}'.format(tokens) }}</b><span>tokens</span></div>
<div class="card"><b>{{ '{:,}'.format(answers) }}</b><span>people's answers</span></div>
<div class="card"><b>{{ num(r.confidence.ece) }}</b><span>ECE against people</span></div>
<div class="card"><b class="{{ 'alarm' if alarms else 'ok' }}">{{ alarms | length }}</b><span>drift alarms</span></div>
</div>

<h2>Progress</h2>
{{ plot('progress', 'Nothing ingested yet: labelloop ingest FILE.') }}

<h2>States and reasons</h2>
<table><tr><th>prediction status</th>{% for k in r.status.predictions %}<th>{{ k }}</th>{% endfor %}</tr>
<tr><td>current predictions</td>{% for v in r.status.predictions.values() %}<td class="n">{{ v }}</td>{% endfor %}
</tr></table>
{{ plot('routes', 'No labels yet: labelloop label.') }}
{{ plot('reasons', 'No item went to review for a reason.') }}

<h2>Cost</h2>
<table><tr><th>calls</th><th>failed</th><th>prompt tokens</th><th>completion tokens</th>
<th>latency p50</th><th>p90</th><th>p99</th></tr>
<tr><td class="n">{{ r.status.calls.calls }}</td><td class="n">{{ r.status.calls.errors }}</td>
<td class="n">{{ r.status.calls.prompt }}</td><td class="n">{{ r.status.calls.completion }}</td>
<td class="n">{{ ms(r.cost.percentile(50)) }}</td><td class="n">{{ ms(r.cost.percentile(90)) }}</td>
<td class="n">{{ ms(r.cost.percentile(99)) }}</td></tr></table>
{{ plot('calls', 'No model calls yet.') }}
{{ plot('latency', 'No answered calls yet.') }}

<h2>The model against people</h2>
{{ plot('confidence', 'No confidences yet: label with a confidence method (logprobs, self-consistency).') }}
{% if r.labelers %}
<table><tr><th>labeler</th><th>items people decided that it answered</th><th>no valid answer</th>
<th>metric</th><th>value</th></tr>
{% for q in r.labelers %}<tr><td>{{ q.name }}</td><td class="n">{{ q.checked }}</td><td class="n">{{ q.missing }}</td>
<td>{{ q.quality.metric if q.quality else '–' }}</td>
<td class="n">{{ num(q.quality.value) if q.quality else '–' }}</td></tr>
{% endfor %}</table>
{% endif %}
{{ plot('labelers', 'No labeler has answers on items people decided yet: review, then labelloop aggregate.') }}
{{ plot('confusion', 'No confusion matrix: it needs a classify task and items people decided.') }}

<h2>People</h2>
{% if r.people.reviewers %}
<table><tr><th>reviewer</th><th>role</th><th>answers</th><th>items</th><th>disputes settled</th>
<th>median time per answer</th><th>test questions right</th><th>flagged for retraining</th></tr>
{% for p in r.people.reviewers %}<tr><td>{{ p.name }}</td><td>{{ p.role }}</td><td class="n">{{ p.answers }}</td>
<td class="n">{{ p.items }}</td><td class="n">{{ p.adjudications }}</td>
<td class="n">{{ secs(p.seconds_per_answer) }}</td><td class="n">{{ p.test_accuracy or '–' }}</td>
<td class="{{ 'alarm' if p.flag else '' }}">{{ p.flag }}</td></tr>
{% endfor %}</table>
<p>Gold: {{ r.people.gold.get('decided', 0) }} items decided, {{ r.people.gold.get('disputed', 0) }} disputes open.</p>
{% endif %}
{{ plot('throughput', 'No answers from people yet: labelloop serve, or labelloop review.') }}
{{ plot('agreement', 'No item answered by two people yet (annotation.overlap).') }}
{{ plot('settled', 'No dispute settled yet.') }}

<h2>Prompt versions and comparisons</h2>
{% if r.prompts %}
<table><tr><th>prompt version</th><th>labeler</th><th>model</th><th>first run</th><th>last run</th><th>runs</th>
<th>items</th><th>calls</th><th>from cache</th><th>tokens</th></tr>
{% for p in r.prompts %}<tr><td><code>{{ p.prompt_version }}</code></td><td>{{ p.labeler }}</td><td>{{ p.model }}</td>
<td>{{ p.first_run[:19] }}</td><td>{{ p.last_run[:19] }}</td><td class="n">{{ p.runs }}</td>
<td class="n">{{ p['items'] }}</td><td class="n">{{ p.calls }}</td><td class="n">{{ p.cache_hits }}</td>
<td class="n">{{ (p.prompt_tokens or 0) + (p.completion_tokens or 0) }}</td></tr>
{% endfor %}</table>
{% else %}<p class="empty">No labeling run yet.</p>{% endif %}
{% for c in r.comparisons | reverse %}
<h3>Compared {{ c.at[:19] }} on {{ c['items'] }} gold items of <code>{{ c.gold }}</code></h3>
<table><tr><th>variant</th><th>prompt</th><th>model</th><th>metric</th><th>value</th><th>right</th>
<th>auto-accepted</th><th>their precision</th><th>ECE</th></tr>
{% for v in c.variants %}<tr><td>{{ v.name }}</td><td><code>{{ v.prompt_version }}</code></td><td>{{ v.model }}</td>
<td>{{ v.quality.metric }}</td><td class="n">{{ num(v.quality.value) }}</td>
<td class="n">{{ v.quality.correct }} / {{ v.quality['items'] }}</td>
<td class="n">{{ pct(v.routing.accepted_share) }}</td><td class="n">{{ pct(v.routing.accepted_precision) }}</td>
<td class="n">{{ num(v.routing.ece) }}</td></tr>
{% endfor %}</table>
<ul>{% for v in c.verdicts %}<li class="{{ 'ok' if v.significant else '' }}">{{ v.sentence }}</li>{% endfor %}</ul>
{% else %}<p class="empty">No comparison yet: labelloop compare --gold GOLD current NAME:key=value.</p>
{% endfor %}

<h2>The flywheel</h2>
{{ plot('effort', 'No simulation yet: labelloop simulate GOLD shows what each accuracy costs in human work.') }}

<h2>Drift</h2>
{% if alarms %}<ul>{% for a in alarms %}<li class="alarm">{{ a }}</li>{% endfor %}</ul>
{% elif r.drift %}<p class="ok">No alarm in the latest batch.</p>{% endif %}
{{ plot('drift', 'No batch to test yet: drift needs a reference batch and a later one (monitor: in labelloop.yaml).') }}
{% if r.drift %}
<table><tr><th>batch</th><th>items</th>{% for s in stat_names %}<th>{{ s }}</th>{% endfor %}</tr>
{% for b in r.drift.batches %}<tr><td>{{ b.name }}</td><td class="n">{{ b['items'] }}</td>
{% if b.reference %}<td colspan="{{ stat_names | length }}">reference</td>{% else %}
{% for s in b.statistics %}<td class="n {{ 'alarm' if s.alarm else '' }}" title="{{ describe(s) }}">
{{ num(s.value) }}</td>{% endfor %}{% endif %}</tr>
{% endfor %}</table>
{% endif %}
</body></html>
""")


def render(report: ProjectReport) -> str:
    """The report's HTML."""
    plots = every_plot(report)
    routes = report.status.routes
    tested = [b for b in report.drift.batches if not b.reference] if report.drift else []

    def plot(key: str, empty: str) -> Markup:
        found: Plot | None = plots[key]
        if found is None:
            return Markup('<p class="empty" data-plot-empty="{}">{}</p>').format(key, empty)
        figure = '<figure class="plot" data-plot="{}" data-points="{}"><figcaption>{}</figcaption>{}</figure>'
        return Markup(figure).format(found.key, found.points, found.title, Markup(found.svg))

    def share(route: str) -> float | None:
        total = sum(routes.values())
        return routes.get(route, 0) / total if total else None

    context: dict[str, Any] = dict(
        r=report, plot=plot, share=share, num=_num, pct=_pct, ms=_ms, secs=_secs, describe=describe,
        tokens=(report.status.calls.get("prompt") or 0) + (report.status.calls.get("completion") or 0),
        answers=sum(p.answers for p in report.people.reviewers),
        alarms=report.drift.latest_alarms if report.drift else [],
        stat_names=[s.name for s in tested[0].statistics] if tested else [],
    )  # fmt: skip
    return _PAGE.render(**context)


def write_report(report: ProjectReport, path: str | Path) -> Path:
    """Write the report's page to ``path`` (atomically)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(render(report), encoding="utf-8")
    return path


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"
