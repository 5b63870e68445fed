"""People's quality on real crowd answers (medrel_crowd, CrowdTruth): flags, exclusion and ``aggregate: auto``.

For each relation the expert judged (CAUSES, TREATS) the task is a yes/no question per sentence. The expert's
items are split at random into halves: the *test* half becomes test questions (their known answers), the
*held-out* half only scores. Every crowd worker is replayed as a simulated annotator: their answers to test
questions are recorded as test answers, their other answers imported as annotations, through the library as
a project would. Then:

- flags: which workers ``annotators`` flags, and precision@k of the flags against the workers that the
  held-out expert items show to be worst (the k with the lowest accuracy there, among workers with at least
  :data:`MIN_HELD_OUT` held-out answers; k = the number flagged among them), beside the rate a random pick gets;
- exclusion: the aggregate's accuracy on the held-out items with and without ``exclude_flagged``;
- auto: the method ``aggregate: auto`` chose (by accuracy on the test half) and its accuracy on the held-out
  half, against every method's there (the best of them chosen with hindsight).

    python benchmarks/people_quality.py [--data ../shared/datasets/medrel_crowd] [--splits 3] [--relations …]
                                        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labelloop import Project
from labelloop.aggregate import collect_votes, decide
from labelloop.aggregation_method import CANDIDATES, Choice

JUDGED = ["CAUSES", "TREATS"]
MIN_HELD_OUT = 5
SPEC = """name: medrel {relation}
kind: classify
instruction: Does the relation {relation} hold between the two marked terms?
labels: ["yes", "no"]
annotation: {{aggregate: {aggregate}, min_agreement: 0.0, exclude_flagged: {exclude}}}
"""


def relation_of(labels: list[str]) -> set[str]:
    return {x.strip("[]\"' ").upper() for x in labels}


def build(root: Path, data: Path, relation: str, test_items: set[str]) -> Project:
    """A project whose items are the sentences, with test questions and every worker's answers replayed."""
    root.mkdir(parents=True)
    (root / "labelloop.yaml").write_text(SPEC.format(relation=relation, aggregate="auto", exclude="false"))
    project = Project(root)
    project.ingest(data / "items.jsonl", id_field="id")
    expert = {r["item"]: r for r in map(json.loads, (data / "expert.jsonl").open())}
    questions = root / "questions.jsonl"
    questions.write_text("".join(json.dumps({"id": i, "label": "yes" if expert[i][relation] else "no"}) + "\n"
                                 for i in sorted(test_items)))  # fmt: skip
    project.store.add_test_questions({i: {"label": "yes" if expert[i][relation] else "no"} for i in test_items},
                                     "file", "benchmark")  # fmt: skip
    answers = root / "answers.jsonl"
    with answers.open("w") as out:
        for row in map(json.loads, (data / "annotations.jsonl").open()):
            label = "yes" if relation in relation_of(row["labels"]) else "no"
            if row["item"] in test_items:
                right = label == ("yes" if expert[row["item"]][relation] else "no")
                project.store.record_test_answer(row["item"], row["annotator"], {"label": label}, "label", right,
                                                 "check")  # fmt: skip
            else:
                out.write(json.dumps({"item": row["item"], "annotator": row["annotator"], "labels": label}) + "\n")
    project.import_annotations(answers)
    return project


def accuracy(decided: dict[str, str], truth: dict[str, str]) -> float:
    return float(np.mean([decided.get(i) == t for i, t in truth.items()]))


def run(data: Path, relation: str, seed: int, workdir: Path) -> dict:
    expert = {r["item"]: r for r in map(json.loads, (data / "expert.jsonl").open()) if relation in r}
    items = sorted(expert)
    random.Random(seed).shuffle(items)
    test_items, held_out = set(items[: len(items) // 2]), items[len(items) // 2 :]
    truth = {i: "yes" if expert[i][relation] else "no" for i in held_out}
    project = build(workdir / f"{relation}-{seed}", data, relation, test_items)
    started = time.perf_counter()
    scores = project.annotators()
    flagged = {s.name for s in scores if s.flagged}
    per_worker: dict[str, list[bool]] = {}
    for row in map(json.loads, (data / "annotations.jsonl").open()):
        if row["item"] in truth:
            label = "yes" if relation in relation_of(row["labels"]) else "no"
            per_worker.setdefault(row["annotator"], []).append(label == truth[row["item"]])
    judged = {w: float(np.mean(v)) for w, v in per_worker.items() if len(v) >= MIN_HELD_OUT}
    ranked = sorted(judged, key=lambda w: judged[w])
    by_tests = {s.name for s in scores if any(w.startswith("test accuracy") for w in s.why)}

    def precision_at_k(found: set[str]) -> tuple[int, float | None]:
        k = len(found & set(judged))
        return k, len(found & set(ranked[:k])) / k if k else None

    k, precision = precision_at_k(flagged)
    k_tests, precision_tests = precision_at_k(by_tests)
    votes = collect_votes(project.store, project.spec)
    chance = k / len(judged) if judged else None
    results = {"relation": relation, "seed": seed, "workers": len(scores), "flagged": len(flagged),
               "flagged_judged": k, "precision_at_k": precision, "random_precision": chance,
               "flagged_by_tests_judged": k_tests, "precision_at_k_tests": precision_tests,
               "random_precision_tests": k_tests / len(judged) if judged else None,
               "flag_seconds": time.perf_counter() - started}  # fmt: skip
    gold = {}
    for method in CANDIDATES:
        decided = decide(project.spec, votes, {}, lambda f, frame, m=method: Choice(f, m, "fixed")).decisions
        gold[method] = accuracy({i: d.output["label"] for i, d in decided.items()}, truth)
    started = time.perf_counter()
    result = project.aggregate(force=True)
    auto = accuracy({i: o["label"] for i, o in project.store.gold_outputs().items()}, truth)
    chose = result.chosen[0]
    results.update(methods=gold, hindsight=max(gold.values()), auto=auto, auto_chose=chose["method"],
                   auto_criterion=chose["criterion"], auto_seconds=time.perf_counter() - started)  # fmt: skip
    spec = project.spec_path.read_text().replace("exclude_flagged: false", "exclude_flagged: true")
    project.spec_path.write_text(spec)
    project.close()
    with Project(project.root) as again:
        again.aggregate(force=True)
        results["auto_without_flagged"] = accuracy({i: o["label"] for i, o in again.store.gold_outputs().items()},
                                                   truth)  # fmt: skip
    return results


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
                        / "medrel_crowd")  # fmt: skip
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--relations", nargs="+", default=JUDGED, choices=JUDGED)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for relation in args.relations:
            for seed in range(args.splits):
                row = run(args.data, relation, seed, Path(tmp))
                rows.append(row)
                methods = ", ".join(f"{m} {v:.3f}" for m, v in row["methods"].items())
                print(f"{relation} split {seed}: {row['flagged']} of {row['workers']} workers flagged;"
                      f" precision@{row['flagged_judged']} {_num(row['precision_at_k'])}"
                      f" (random {_num(row['random_precision'])}); flagged by test accuracy alone:"
                      f" precision@{row['flagged_by_tests_judged']} {_num(row['precision_at_k_tests'])}"
                      f" (random {_num(row['random_precision_tests'])});"
                      f" auto chose {row['auto_chose']} ({row['auto_criterion']}): {row['auto']:.3f}, hindsight best"
                      f" {row['hindsight']:.3f} [{methods}]; without flagged workers {row['auto_without_flagged']:.3f}")
    gaps = [r["hindsight"] - r["auto"] for r in rows]
    print(f"auto against the best method with hindsight: mean gap {100 * np.mean(gaps):.2f} points,"
          f" worst {100 * max(gaps):.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
