"""Human effort to reach 95% dataset accuracy with the flywheel's guarantee, on the shared classification sets,
beside what active learning and random batches cost when an oracle says stop, and LLM-only routing.

Runs the library path of ``labelloop simulate`` (:func:`labelloop.learn.replay.prepare_gold`, then
:func:`~labelloop.learn.replay.replay`) on:

- ``banking3000``: a 3,000-item random sample of banking77 train (77 English intents), no LLM;
- ``banking77``: all 10,003 items, no LLM;
- ``crosswoz``: CrossWOZ user turns about exactly one of 餐馆/景点/酒店/地铁/出租 (Chinese), no LLM;
- ``banking3000_llm``: the 3,000 items with a simulated LLM, right 85% of the time and more confident when
  right (confidence ~ Beta(5, 2) when right, Beta(2, 3) when wrong; seeded), against LLM-only routing on the
  same answers;
- ``crosswoz_smollm2`` (``--llm-sample N``, off by default): a sample labeled by the embedded SmolLM2 through
  the real engine (about 2-4 items a second here).

Every item is embedded by the task's embedders (all-MiniLM-L6-v2 and multilingual-e5-small); embeddings are
kept in ``--out/work-*`` so a rerun skips them. It prints per set the effort with the guarantee, the oracle
baselines and the dataset accuracy each reached, the ratio of the flywheel's effort to each baseline's, and
the seconds taken; curves and HTML reports go to ``--out``::

    python benchmarks/flywheel.py [--data ../shared/datasets] [--out flywheel-report] [--only banking3000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from labelloop import Project
from labelloop.learn.replay import prepare_gold, replay
from labelloop.learn.simulate import Labels, SimulationConfig

ROOT = Path(__file__).resolve().parent
DOMAINS = ["餐馆", "景点", "酒店", "地铁", "出租"]
SETS = ["banking3000", "banking77", "crosswoz", "banking3000_llm"]


def crosswoz_gold(data: Path, out: Path) -> Path:
    """CrossWOZ user turns about exactly one domain, as text + label."""
    rows = [json.loads(line) for line in (data / "crosswoz" / "val.jsonl").open(encoding="utf-8")]
    path = out / "crosswoz_domain.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            if len(row["domains"]) == 1 and row["domains"][0] in DOMAINS:
                handle.write(json.dumps({"id": row["id"], "text": row["text"], "label": row["domains"][0]},
                                        ensure_ascii=False) + "\n")
    return path


def simulated_llm(data: Labels, accuracy: float = 0.85, seed: int = 5) -> None:
    """An LLM right ``accuracy`` of the time (else another label at random), more confident when right."""
    rng = np.random.default_rng(seed)
    classes = np.unique(data.gold)
    right = rng.random(len(data.gold)) < accuracy
    other = np.array([rng.choice(classes[classes != label]) for label in data.gold])
    data.llm_label = np.where(right, data.gold, other)
    data.llm_confidence = np.where(right, rng.beta(5, 2, len(right)), rng.beta(2, 3, len(right)))


def run(name: str, data: Labels, out: Path, config: SimulationConfig, started: float, calls: int = 0) -> dict:
    result = replay(data, config, out / name, llm_calls=calls)
    elapsed = time.perf_counter() - started
    print(f"\n== {name}: {result.items} items, {elapsed:.0f} s with embeddings" +
          (f", LLM accuracy {result.llm_accuracy:.1%}" if result.llm_accuracy is not None else ""))
    for line in result.effort_lines() + result.baseline_lines():
        print("  " + line)
    ratios = {}
    for target in config.targets:
        best = result.flywheel.best(target)
        effort = best.effort if best is not None else 1.0
        for baseline, found in result.baselines(target).items():
            if found is not None:
                ratios[f"{target:g} vs {baseline}"] = effort / found["effort"]
    print("  ratios (flywheel effort / baseline effort): " +
          ", ".join(f"{key} {value:.2f}" for key, value in ratios.items()))
    chosen = [f"{c['reviewed']}: {c['chosen']}" for c in result.flywheel.small_model.get("choices", [])]
    print("  small model chosen at (reviewed: candidate): " + "; ".join(chosen))
    return {"seconds": elapsed, "ratios": ratios, **result.to_dict()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parents[1] / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=Path("flywheel-report"))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, action="append")
    parser.add_argument("--llm-sample", type=int, default=0, help="crosswoz items SmolLM2 labels (0: skip)")
    parser.add_argument("--only", choices=[*SETS, "crosswoz_smollm2"], action="append")
    args = parser.parse_args(argv)
    config = SimulationConfig(targets=args.target or [0.95], batch=args.batch, seed=args.seed)
    only = args.only or SETS + (["crosswoz_smollm2"] if args.llm_sample else [])
    args.out.mkdir(parents=True, exist_ok=True)
    crosswoz = crosswoz_gold(args.data, args.out)
    banking = args.data / "banking77" / "train.jsonl"
    results = {}
    for name in only:
        started = time.perf_counter()
        work = args.out / f"work-{name.removesuffix('_llm')}"
        if name.startswith("banking3000"):
            data, _ = prepare_gold(banking, workdir=work, use_llm=False, limit=3000, seed=args.seed)
            if name.endswith("_llm"):
                simulated_llm(data)
            results[name] = run(name, data, args.out, config, started)
        elif name == "banking77":
            data, _ = prepare_gold(banking, workdir=work, use_llm=False)
            results[name] = run(name, data, args.out, config, started)
        elif name == "crosswoz":
            data, _ = prepare_gold(crosswoz, workdir=work, use_llm=False)
            results[name] = run(name, data, args.out, config, started)
        elif name == "crosswoz_smollm2":
            project_dir = args.out / "crosswoz-project"
            project_dir.mkdir(exist_ok=True)
            (project_dir / "labelloop.yaml").write_text((ROOT / "specs" / "crosswoz_domain.yaml").read_text("utf-8"),
                                                        encoding="utf-8")
            small = SimulationConfig(targets=config.targets, batch=max(20, args.llm_sample // 10), seed=args.seed)
            with Project(project_dir) as project:
                data, calls = prepare_gold(crosswoz, spec=project.spec, workdir=work, limit=args.llm_sample,
                                           seed=args.seed)
            results[name] = run(name, data, args.out, small, started, calls)
    (args.out / "flywheel.json").write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
