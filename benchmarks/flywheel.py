"""Human effort to reach 95% / 98% dataset accuracy with the flywheel, on the shared classification sets.

Runs ``labelloop simulate``'s library entry point on:

- banking77 (10,003 English banking questions, 77 intents), no LLM: the small model alone;
- CrossWOZ domains (the Chinese user turns about exactly one of 餐馆/景点/酒店/地铁/出租), no LLM;
- the same CrossWOZ task on a random sample with the embedded SmolLM2 as the LLM, against LLM-only routing
  (``--llm-sample``, 0 to skip; SmolLM2 labels about 2-4 items a second here).

and prints, per set and target, the effort of the flywheel, of LLM-only routing where an LLM ran, and of
labeling everything by hand (100%). Curves and HTML reports go to ``--out``::

    python benchmarks/flywheel.py [--data ../shared/datasets] [--out flywheel-report] [--llm-sample 400]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from labelloop import Project
from labelloop.learn.replay import run_simulation
from labelloop.learn.simulate import SimulationConfig

ROOT = Path(__file__).resolve().parent
DOMAINS = ["餐馆", "景点", "酒店", "地铁", "出租"]


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


def run(name: str, gold: Path, out: Path, config: SimulationConfig, **options) -> dict:
    started = time.perf_counter()
    replay = run_simulation(gold, out=out / name, config=config, **options)
    elapsed = time.perf_counter() - started
    print(f"\n== {name}: {replay.items} items, {elapsed:.0f} s" +
          (f", LLM accuracy {replay.llm_accuracy:.1%}" if replay.llm_accuracy is not None else ""))
    for line in replay.effort_lines():
        print("  " + line)
    for target in config.targets:
        cells = [f"flywheel {_effort(replay.flywheel, target)}"]
        if replay.llm_only is not None:
            cells.append(f"LLM-only routing {_effort(replay.llm_only, target)}")
        cells.append("by hand 100%")
        print(f"  {target:.0%}: " + " | ".join(cells))
    return {"seconds": elapsed, **replay.to_dict()}


def _effort(result, target: float) -> str:
    best = result.best(target)
    return "100% (no guarantee)" if best is None else f"{best.effort:.1%} (accuracy {best.dataset_accuracy:.1%})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parents[1] / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=Path("flywheel-report"))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--llm-sample", type=int, default=400)
    parser.add_argument("--only", choices=["banking77", "crosswoz", "crosswoz_llm"], action="append")
    args = parser.parse_args(argv)
    config = SimulationConfig(targets=[0.95, 0.98], batch=args.batch)
    only = set(args.only or ["banking77", "crosswoz", "crosswoz_llm"])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        crosswoz = crosswoz_gold(args.data, work)
        if "banking77" in only:
            results["banking77"] = run("banking77", args.data / "banking77" / "train.jsonl", args.out, config,
                                       use_llm=False)
        if "crosswoz" in only:
            results["crosswoz"] = run("crosswoz", crosswoz, args.out, config, use_llm=False)
        if "crosswoz_llm" in only and args.llm_sample:
            project_dir = work / "crosswoz-project"
            project_dir.mkdir()
            (project_dir / "labelloop.yaml").write_text((ROOT / "specs" / "crosswoz_domain.yaml").read_text("utf-8"),
                                                        encoding="utf-8")
            small = SimulationConfig(targets=config.targets, batch=max(20, args.llm_sample // 10))
            with Project(project_dir) as project:
                results["crosswoz_llm"] = run("crosswoz_llm", crosswoz, args.out, small, project=project,
                                              limit=args.llm_sample, use_llm=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flywheel.json").write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
