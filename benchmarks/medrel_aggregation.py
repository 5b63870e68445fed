"""How well each way of aggregating crowd answers matches the expert, on medrel_crowd (CrowdTruth).

About 15 crowd workers chose, for each of 1,614 sentences, every relation that holds between two marked
terms; a medical expert judged CAUSES and/or TREATS for 278 of them. This script imports the crowd's
answers into a throwaway labelloop project exactly as a user would (``import-annotations --fix-labels``),
decides every item four ways with the library's aggregation, and scores each against the expert:

- majority, per label: a relation holds when more workers chose it than did not;
- majority, whole set: the most frequent set of relations wins;
- Dawid-Skene, per label: one confusion matrix per worker and relation (crowd-kit);
- Dawid-Skene, whole set: one confusion matrix per worker over whole sets.

It prints agreement among the workers (per-relation Krippendorff's alpha) and, per relation and method,
accuracy, precision, recall, F1 and Cohen's kappa against the expert, plus a baseline that says "no"
to everything (so accuracy can be read against the class balance)::

    python benchmarks/medrel_aggregation.py [--data ../shared/datasets/medrel_crowd] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labelloop import Project
from labelloop.aggregate import collect_votes, decide
from labelloop.agree import cohen_kappa, per_label_agreement

RELATIONS = ["TREATS", "PREVENTS", "CAUSES", "SYMPTOM", "MANIFESTATION", "DIAGNOSE_BY_TEST_OR_DRUG",
             "CONTRAINDICATES", "SIDE_EFFECT", "ASSOCIATED_WITH", "IS_A", "PART_OF", "LOCATION", "OTHER", "NONE"]
JUDGED = ["CAUSES", "TREATS"]
METHODS = {"majority, per label": ("majority", "per_label"), "majority, whole set": ("majority", "whole"),
           "Dawid-Skene, per label": ("dawid_skene", "per_label"), "Dawid-Skene, whole set": ("dawid_skene", "whole")}
SPEC = """name: medical relations (medrel_crowd)
kind: multilabel
instruction: Choose every relation that holds between the two marked terms.
labels: [{labels}]
input: {{id_field: id}}
annotation: {{aggregate: {aggregate}, sets: {sets}, min_agreement: 0.0}}
"""


def scores(expert: list[bool], predicted: list[bool]) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1 and Cohen's kappa of yes/no decisions against the expert's."""
    e, p = np.array(expert), np.array(predicted)
    hits = int(np.sum(e & p))
    precision = hits / p.sum() if p.sum() else 0.0
    recall = hits / e.sum() if e.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"items": len(e), "positives": int(e.sum()), "accuracy": float(np.mean(e == p)),
            "precision": precision, "recall": recall, "f1": f1, "kappa": cohen_kappa(e.astype(int), p.astype(int))}


def write_spec(project_dir: Path, aggregate: str, sets: str) -> None:
    (project_dir / "labelloop.yaml").write_text(
        SPEC.format(labels=", ".join(RELATIONS), aggregate=aggregate, sets=sets), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared/datasets/medrel_crowd"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    expert = [json.loads(line) for line in (args.data / "expert.jsonl").open(encoding="utf-8")]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_spec(root, "majority", "per_label")
        with Project(root) as project:
            project.ingest(args.data / "items.jsonl")
            started = time.perf_counter()
            imported = project.import_annotations(args.data / "annotations.jsonl", fix_labels=True)
            print(f"imported {imported.added} answers from {imported.annotators} workers on {imported.items} items"
                  f" in {time.perf_counter() - started:.1f} s ({imported.fixed_labels} labels with stray brackets"
                  f" fixed, {imported.records - imported.added} repeated rows skipped)")
            votes = collect_votes(project.store, project.spec)
            sets = {item: {w: frozenset(o["labels"]) for w, o in raters.items()} for item, raters in votes.items()}
            alphas = per_label_agreement(sets, RELATIONS)
            print("worker agreement, Krippendorff's alpha per relation: " + ", ".join(
                f"{label} {alphas[label]['alpha']:.2f}" for label in RELATIONS))
            results: dict[str, dict[str, dict]] = {}
            for name, (aggregate, set_mode) in METHODS.items():
                write_spec(root, aggregate, set_mode)
                started = time.perf_counter()
                decisions = decide(project.spec, votes, {}).decisions
                elapsed = time.perf_counter() - started
                results[name] = {"seconds": elapsed}
                for relation in JUDGED:
                    judged = [row for row in expert if relation in row and row["item"] in decisions]
                    results[name][relation] = scores([row[relation] for row in judged],
                                                     [relation in decisions[row["item"]].output["labels"]
                                                      for row in judged])
            for relation in JUDGED:
                judged = [row[relation] for row in expert if relation in row]
                results.setdefault("always no", {})[relation] = scores(judged, [False] * len(judged))
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({"alpha": {k: v["alpha"] for k, v in alphas.items()}, "results": results},
                                        indent=2), encoding="utf-8")
    return 0


def print_table(results: dict[str, dict[str, dict]]) -> None:
    print(f"\n{'method':26} {'relation':9} {'items':>5} {'pos':>4} {'acc':>6} {'prec':>6} {'rec':>6} {'F1':>6}"
          f" {'kappa':>6}")
    for relation in JUDGED:
        for name, by_relation in results.items():
            s = by_relation[relation]
            kappa = "–" if s["kappa"] is None else f"{s['kappa']:.3f}"
            print(f"{name:26} {relation:9} {s['items']:5d} {s['positives']:4d} {s['accuracy']:6.3f}"
                  f" {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f} {kappa:>6}")


if __name__ == "__main__":
    sys.exit(main())
