"""Label quality per task kind: label a slice of each shared dataset, score the answers against gold.

For every task below it builds a throwaway project in a temp dir from ``benchmarks/specs/TASK.yaml``,
ingests a seeded sample of N items (``id`` and ``text`` only: gold never reaches the prompt) read
from ``../shared/datasets`` at run time, labels them, reads back the current predictions and scores:

- classify: accuracy and macro F1 (over the labels in gold or predictions)
- multilabel: micro and macro F1 over labels, exact-set match
- spans: strict span F1 (``labelloop.spans.span_f1``, seqeval IOB2) and exact-offset F1

Unparsable or failed predictions count as empty ones. ``--self-check`` answers every item with its
gold label through a stub backend, so the whole path (prompt, engine, validation, grounding, store,
read-back, metrics) runs without a model and must score 1.0 everywhere.

    python benchmarks/kinds_f1.py --items 10                       # embedded SmolLM2 (llama.cpp)
    python benchmarks/kinds_f1.py --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct
    python benchmarks/kinds_f1.py --self-check --kinds spans,banking77
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelloop import CompletionRequest, CompletionResponse, LabelOptions, Project, label
from labelloop.backends.base import response_from_body
from labelloop.spans import Span, exact_span_f1, span_f1

HERE = Path(__file__).resolve().parent
DATASETS = HERE.parent.parent / "shared" / "datasets"
LABELER = "llm"


@dataclass(frozen=True)
class Task:
    """A dataset slice, the spec that labels it, and how to read its gold answer."""

    name: str
    kind: str  # classify | multilabel | spans
    dataset: str  # path under DATASETS
    gold: Callable[[dict], Any]  # record -> str | list[str] | list[Span]
    keep: Callable[[dict], bool] = lambda record: True
    items: int = 30  # default slice (fewer where the embedded model is slow per item)


def _spans(field: str, labels: set[str] | None = None) -> Callable[[dict], list[Span]]:
    """Gold spans from a record's ``field``, restricted to ``labels`` when given."""
    return lambda r: [Span(s["start"], s["end"], s["label"], s["text"]) for s in r[field]
                      if labels is None or s["label"] in labels]


_CROSSWOZ_DOMAINS = {"餐馆": ("名称", "推荐菜", "人均消费", "评分"), "景点": ("名称", "门票", "评分", "游玩时间"),
                     "酒店": ("名称", "酒店类型", "价格", "评分"), "出租": ("出发地", "目的地"),
                     "地铁": ("出发地", "目的地")}
# 16 of the 44 labels: the gold spans of the 28 酒店-酒店设施-* labels are the value 是 ("yes")
# matched at an arbitrary 是 in the turn, not a mention (see benchmarks/specs/crosswoz_spans.yaml).
CROSSWOZ_SLOTS = {f"{domain}-{slot}" for domain, slots in _CROSSWOZ_DOMAINS.items() for slot in slots}

TASKS = [
    Task("restaurant8k_spans", "spans", "restaurant8k/train.jsonl", _spans("spans"), items=20),
    Task("nlupp_hotels_intents", "multilabel", "nlupp/hotels.jsonl", lambda r: sorted(r["intents"]), items=20),
    Task("nlupp_hotels_slots", "spans", "nlupp/hotels.jsonl", _spans("slots")),
    Task("crosswoz_spans", "spans", "crosswoz/val.jsonl", _spans("spans", CROSSWOZ_SLOTS), items=20),
    Task("crosswoz_domain", "classify", "crosswoz/val.jsonl", lambda r: r["domains"][0],
         keep=lambda r: len(r["domains"]) == 1),
    Task("banking77", "classify", "banking77/train.jsonl", lambda r: r["label"], items=20),
]


# -- data -------------------------------------------------------------------------------------

def load_slice(task: Task, n: int, seed: int) -> list[dict]:
    """A seeded sample of ``n`` records (distinct texts, file order) as ``{id, text, gold}``."""
    seen: set[str] = set()
    pool = []
    with open(DATASETS / task.dataset, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if task.keep(record) and record["text"] not in seen:
                seen.add(record["text"])
                pool.append({"id": record["id"], "text": record["text"], "gold": task.gold(record)})
    picked = sorted(random.Random(seed).sample(range(len(pool)), min(n, len(pool))))
    return [pool[i] for i in picked]


def build_project(root: Path, task: Task, records: list[dict]) -> Project:
    """A fresh project in ``root`` with the task's spec and the slice's items (id and text only)."""
    root.mkdir(parents=True)
    shutil.copyfile(HERE / "specs" / f"{task.name}.yaml", root / "labelloop.yaml")
    items = root / "items.jsonl"
    items.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n"
                             for r in records), encoding="utf-8")
    project = Project(root)
    project.ingest(items, text_field="text", id_field="id")
    return project


# -- the gold stub backend (self-check) -------------------------------------------------------

def gold_answer(kind: str, text: str, gold: Any) -> dict:
    """The answer a perfect model would write: mentions by text and occurrence, never offsets."""
    if kind == "classify":
        return {"label": gold}
    if kind == "multilabel":
        return {"labels": gold}
    return {"entities": [{"text": s.text, "label": s.label, "occurrence": _occurrence(text, s)} for s in gold]}


def _occurrence(text: str, span: Span) -> int | None:
    """Which non-overlapping occurrence of ``span.text`` (1-based) starts at ``span.start``."""
    starts, pos = [], text.find(span.text)
    while pos >= 0:
        starts.append(pos)
        pos = text.find(span.text, pos + len(span.text))
    return starts.index(span.start) + 1 if span.start in starts else None


class GoldBackend:
    """Answers each item's message with its gold answer (no logprobs, so no confidence)."""

    name = "gold"
    model_id = "gold"

    def __init__(self, answers: dict[str, dict]):
        self.answers = answers

    async def __aenter__(self) -> GoldBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        user = next(m["content"] for m in reversed(request.messages)
                    if m["role"] == "user" and m["content"] in self.answers)
        content = json.dumps(self.answers[user], ensure_ascii=False)
        body = {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
        return response_from_body(json.dumps(body, ensure_ascii=False), body)


def run_labeling(project: Project, task: Task, records: list[dict], args: argparse.Namespace) -> None:
    """Label every item: gold stub, an OpenAI-compatible server, or the spec's (embedded) model."""
    options = LabelOptions(labeler=LABELER)
    if args.self_check:
        answers = {r["text"]: gold_answer(task.kind, r["text"], r["gold"]) for r in records}
        label(project.store, project.spec, project.settings(), options=options, backend=GoldBackend(answers))
    elif args.base_url:  # the specs' token caps suit the tiny embedded model; a real one may need more
        project.label(options, backend="openai", base_url=args.base_url, model=args.model,
                      concurrency=args.concurrency, max_tokens=args.max_tokens or 512)
    else:
        project.label(options, max_tokens=args.max_tokens)


# -- predictions and metrics ------------------------------------------------------------------

def read_predictions(project: Project, records: list[dict]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Current outputs by item id (unparsable/failed ones left out) and the routing figures of the slice."""
    rows = project.store.current_predictions(LABELER)
    outputs = {row["item_id"]: json.loads(row["output"]) for row in rows if row["output"] and row["status"] == "ok"}
    confidences = [row["confidence"] for row in rows if row["confidence"] is not None]
    return outputs, {"review": sum(row["route"] == "needs_review" for row in rows) / len(records),
                     "no_output": sum(r["id"] not in outputs for r in records) / len(records),
                     "confidence": sum(confidences) / len(confidences) if confidences else None}


def as_prediction(kind: str, text: str, output: Any) -> Any:
    """The comparable form of a stored output; anything malformed reads as the empty answer."""
    output = output if isinstance(output, dict) else {}
    if kind == "classify":
        return output.get("label") if isinstance(output.get("label"), str) else None
    if kind == "multilabel":
        labels = output.get("labels")
        return sorted({x for x in labels if isinstance(x, str)}) if isinstance(labels, list) else []
    mentions = output.get("entities")
    return [_span(text, m) for m in mentions if _grounded(m)] if isinstance(mentions, list) else []


def _grounded(mention: Any) -> bool:
    """A mention labelloop found in the text (an answer that failed validation keeps ungrounded ones)."""
    return (isinstance(mention, dict) and isinstance(mention.get("label"), str)
            and isinstance(mention.get("start"), int) and isinstance(mention.get("end"), int))


def _span(text: str, mention: dict) -> Span:
    return Span(mention["start"], mention["end"], mention["label"], text[mention["start"]:mention["end"]])


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _macro_f1(pairs: list[tuple[set, set]]) -> float:
    """Macro F1 over the labels found in gold or predictions; each pair is (gold set, predicted set)."""
    labels = sorted(set().union(*(g | p for g, p in pairs)))
    scores = [_f1(sum(x in g and x in p for g, p in pairs), sum(x in p and x not in g for g, p in pairs),
                  sum(x in g and x not in p for g, p in pairs)) for x in labels]
    return sum(scores) / len(scores) if scores else 0.0


def classify_metrics(gold: list[str], pred: list[str | None]) -> dict[str, float]:
    """Accuracy and macro F1 (sklearn when installed; a missing prediction is wrong for every label)."""
    accuracy = sum(g == p for g, p in zip(gold, pred)) / len(gold)
    try:
        from sklearn.metrics import f1_score
    except ImportError:
        macro = _macro_f1([({g}, {p} - {None}) for g, p in zip(gold, pred)])
    else:
        labels = sorted(set(gold) | {p for p in pred if p is not None})
        macro = float(f1_score(gold, [p or "\0none" for p in pred], labels=labels, average="macro",
                               zero_division=0))
    return {"acc": accuracy, "macroF1": macro}


def multilabel_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Micro F1 (pooled over labels), macro F1 (mean over labels) and exact-set match."""
    pairs = [(set(g), set(p)) for g, p in zip(gold, pred)]
    tp = sum(len(g & p) for g, p in pairs)
    micro = _f1(tp, sum(len(p - g) for g, p in pairs), sum(len(g - p) for g, p in pairs))
    return {"microF1": micro, "macroF1": _macro_f1(pairs), "exact": sum(g == p for g, p in pairs) / len(pairs)}


def spans_metrics(gold: list[list[Span]], pred: list[list[Span]], texts: list[str]) -> dict[str, float]:
    """Strict span F1 (token-aligned, seqeval) and exact-offset span F1.

    Spans are sorted first: ``bio_tags`` keeps whichever same-extent span comes first in the list,
    so the same spans in another order would otherwise score differently."""
    gold, pred = ([sorted(s, key=lambda x: (x.start, x.end, x.label)) for s in side] for side in (gold, pred))
    return {"spanF1": span_f1(gold, pred, texts)["f1"], "exactF1": exact_span_f1(gold, pred)["f1"]}


def score(kind: str, records: list[dict], outputs: dict[str, Any]) -> dict[str, float]:
    """The kind's metrics for the slice; an item without an output counts as an empty answer."""
    gold = [r["gold"] for r in records]
    pred = [as_prediction(kind, r["text"], outputs.get(r["id"])) for r in records]
    if kind == "classify":
        return classify_metrics(gold, pred)
    if kind == "multilabel":
        return multilabel_metrics(gold, pred)
    return spans_metrics(gold, pred, [r["text"] for r in records])


# -- running and reporting --------------------------------------------------------------------

def run_task(task: Task, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build, label and score one task; returns its table row."""
    started = time.perf_counter()
    records = load_slice(task, args.items or task.items, args.seed)
    with build_project(workdir / task.name, task, records) as project:
        run_labeling(project, task, records, args)
        outputs, routing = read_predictions(project, records)
    return {"task": task.name, "kind": task.kind, "dataset": task.dataset, "items": len(records),
            "metrics": score(task.kind, records, outputs), **routing, "seconds": time.perf_counter() - started}


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per task: metrics, shares to review and without output, mean confidence, seconds."""
    header = ["task", "kind", "dataset", "items", "metrics", "review", "no output", "mean conf", "seconds"]
    lines = [[r["task"], r["kind"], r["dataset"], str(r["items"]),
              " ".join(f"{k}={v:.3f}" for k, v in r["metrics"].items()), f"{r['review']:.0%}", f"{r['no_output']:.0%}",
              "-" if r["confidence"] is None else f"{r['confidence']:.3f}", f"{r['seconds']:.1f}"]
             for r in rows]
    widths = [max(len(x) for x in column) for column in zip(header, *lines)]
    for line in [header, ["-" * w for w in widths], *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, help="items per task (default: 30; 20 for the slowest tasks)")
    parser.add_argument("--kinds", help="comma-separated kinds or task names, e.g. spans,banking77")
    parser.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server instead of the embedded model")
    parser.add_argument("--model", help="model name on that server (default: the server's)")
    parser.add_argument("--max-tokens", type=int, help="answer cap (default: the spec's; 512 with --base-url)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight with --base-url")
    parser.add_argument("--self-check", action="store_true", help="score gold as predictions (no model)")
    parser.add_argument("--keep", action="store_true", help="keep the projects (path printed)")
    return parser.parse_args(argv)


def selected(choice: str | None) -> list[Task]:
    """The tasks whose kind or name is in ``choice`` (all when None)."""
    if not choice:
        return TASKS
    wanted = {c.strip() for c in choice.split(",") if c.strip()}
    unknown = wanted - {t.kind for t in TASKS} - {t.name for t in TASKS}
    if unknown:
        sys.exit(f"unknown kinds or tasks: {', '.join(sorted(unknown))}")
    return [t for t in TASKS if t.kind in wanted or t.name in wanted]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tasks = selected(args.kinds)
    workdir = Path(tempfile.mkdtemp(prefix="kinds_f1-"))
    started = time.perf_counter()
    try:
        rows = [run_task(task, args, workdir) for task in tasks]
    finally:
        if args.keep:
            print(f"projects kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    backend = "gold (self-check)" if args.self_check else args.base_url or "embedded llamacpp (SmolLM2-135M)"
    print(f"labeler: {backend}; seed {args.seed}; total {time.perf_counter() - started:.1f} s")
    print_table(rows)
    if args.self_check:
        bad = [r["task"] for r in rows if any(abs(v - 1.0) > 1e-9 for v in r["metrics"].values())]
        if bad:
            print(f"SELF-CHECK FAILED: {', '.join(bad)}")
            return 1
        print("self-check ok: gold scores 1.0 on every metric")
    return 0


if __name__ == "__main__":
    sys.exit(main())
