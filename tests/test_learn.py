"""The flywheel: embeddings, the small model, calibration, policy, few-shot, active order, duplicates, simulate.

Embeddings are real (the bundled all-MiniLM-L6-v2 on the CPU) and so are the data (banking77 slices).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import FaultServer, free_port, serving_smollm2
from labelloop import LabelOptions, Project
from labelloop.errors import BackendUnavailable, ProjectError
from labelloop.learn import small
from labelloop.learn.active import k_center_greedy, select_batch
from labelloop.learn.embed import EndpointEmbedder, SentenceTransformerEmbedder, ensure_embeddings, load_embeddings
from labelloop.learn.simulate import Labels, SimulationConfig, simulate
from labelloop.review import review_queue

pytest.importorskip("sentence_transformers")
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not (DATA / "banking77").is_dir():
    pytest.skip(f"shared datasets not found at {DATA}", allow_module_level=True)
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed", "cash_withdrawal_charge"]
FAST = dict(backend="openai", model="fault", timeout=2, retries=0, backoff=0.01, concurrency=1)


def banking(labels: list[str] = LABELS, per_label: int = 40) -> list[dict]:
    """A balanced banking77 slice: ``per_label`` questions for each of ``labels``, the labels taking turns."""
    by_label: dict[str, list[dict]] = {label: [] for label in labels}
    for line in (DATA / "banking77" / "train.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        if row["label"] in by_label and len(by_label[row["label"]]) < per_label:
            by_label[row["label"]].append(row)
    return [by_label[label][i] for i in range(per_label) for label in labels]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


SPEC = """name: banking
kind: classify
instruction: Which banking intent is this question?
labels: [{labels}]
model: {{backend: openai, model: fault}}
learn: {learn}
"""


def make(tmp_path: Path, rows: list[dict], learn: str = "{small_model: {min_examples: 20}}",
         gold: int = 0) -> Project:
    """A project with ``rows`` ingested and the first ``gold`` of them answered by a person."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "labelloop.yaml").write_text(SPEC.format(labels=", ".join(LABELS), learn=learn), encoding="utf-8")
    project = Project(root)
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows), encoding="utf-8")
    project.ingest(data, id_field="id")
    if gold:
        answers = tmp_path / "gold.jsonl"
        answers.write_text("".join(json.dumps({"item": r["id"], "annotator": "ana", "labels": r["label"]}) + "\n"
                                   for r in rows[:gold]), encoding="utf-8")
        project.import_annotations(answers)
        project.aggregate()
    return project


# -- embeddings --------------------------------------------------------------------------------------


def test_items_are_embedded_once_normalised_and_similar_ones_are_close(tmp_path, embedder):
    rows = banking(per_label=4)
    with make(tmp_path, rows) as project:
        assert ensure_embeddings(project.store, embedder) == 20
        assert ensure_embeddings(project.store, embedder) == 0  # stored: not again
        vectors = load_embeddings(project.store, embedder.name)
    assert vectors.matrix.shape == (20, 384) and np.allclose(np.linalg.norm(vectors.matrix, axis=1), 1, atol=1e-5)
    similarity = vectors.matrix @ vectors.matrix.T
    same = [similarity[i, j] for i in range(20) for j in range(20) if i != j and rows[i]["label"] == rows[j]["label"]]
    other = [similarity[i, j] for i in range(20) for j in range(20) if rows[i]["label"] != rows[j]["label"]]
    assert np.mean(same) > np.mean(other) + 0.15


@pytest.fixture(scope="module")
def embedding_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server with /v1/embeddings on (the bundled SmolLM2)."""
    with serving_smollm2(tmp_path_factory.mktemp("embed") / "server.log", "--embedding", "True") as url:
        yield url


@pytest.mark.slow
def test_an_openai_compatible_embeddings_endpoint(tmp_path, embedding_server):
    endpoint = EndpointEmbedder(embedding_server, "smollm2", batch_size=3)
    with make(tmp_path, banking(per_label=1)) as project:
        assert ensure_embeddings(project.store, endpoint) == 5  # two requests of 3 and 2
        vectors = load_embeddings(project.store, endpoint.name)
    assert endpoint.name == f"smollm2@{embedding_server}"
    assert vectors.matrix.shape[0] == 5 and np.allclose(np.linalg.norm(vectors.matrix, axis=1), 1, atol=1e-5)
    with pytest.raises(BackendUnavailable, match="embeddings request failed"):
        EndpointEmbedder(f"http://127.0.0.1:{free_port()}/v1", None).embed(["x"])


# -- the small model ---------------------------------------------------------------------------------


def test_train_cross_validates_calibrates_labels_every_item_and_cross_checks(tmp_path, embedder):
    rows = banking(per_label=40)
    with make(tmp_path, rows, gold=150) as project:
        fault = FaultServer(content=json.dumps({"label": "exchange_rate"}))  # the LLM says one label for all
        project.label(base_url=fault.base_url, **FAST)
        fault.close()
        result = project.train()
        report = result.report
        assert (report.examples, report.labels, report.folds) == (150, 5, 5)
        assert report.accuracy > 0.85 and report.macro_f1 > 0.85
        assert set(report.per_label) == set(LABELS)
        assert Path(report.path).is_file() and report.data_version in report.path
        assert sum(result.routes.values()) == 200
        predictions = {r["item_id"]: r for r in project.store.current_predictions("small")}
        right = sum(json.loads(predictions[r["id"]]["output"])["label"] == r["label"] for r in rows[150:])
        assert right >= 40  # of the 50 items nobody labeled
        # the small model disagrees with "exchange_rate" for about 4 in 5 items: those never stay accepted
        llm = {r["item_id"]: r for r in project.store.current_predictions("llm")}
        for item_id, row in llm.items():
            if json.loads(predictions[item_id]["output"])["label"] != "exchange_rate":
                assert row["route"] == "needs_review"
        crossover = {row["labeler"]: row for row in result.crossover.rows}
        assert crossover["small"]["calls_per_item"] == 0 and crossover["small"]["accuracy"] == report.accuracy
        assert crossover["llm"]["accuracy"] == pytest.approx(0.2, abs=0.05)


def test_the_threshold_guarantees_precision_or_refuses(tmp_path):
    rng = np.random.default_rng(0)
    vectors = np.vstack([rng.normal(c, 0.35, size=(60, 8)) for c in range(3)])
    labels = [str(c) for c in range(3) for _ in range(60)]
    model, report = small.fit({"v": vectors}, labels, target=0.95, level=0.9)
    t = report.threshold
    assert t["threshold"] is not None and t["lower_bound"] >= 0.95 and t["precision"] >= t["lower_bound"]
    noisy = [labels[i] if rng.random() < 0.6 else str(rng.integers(3)) for i in range(len(labels))]
    _, bad = small.fit({"v": vectors}, noisy, target=0.95, level=0.9)
    assert bad.threshold["threshold"] is None  # 60-70% right: no threshold can promise 95%


def test_the_small_model_is_chosen_by_cross_validation_among_embedders_and_strengths():
    rng = np.random.default_rng(1)
    labels = [str(c) for c in range(4) for _ in range(40)]
    informative = np.vstack([np.eye(8)[c] + rng.normal(0, 0.3, size=(40, 8)) for c in range(4)])
    noise = rng.normal(0, 1, size=(160, 8))
    model, report = small.fit({"noise": noise, "good": informative}, labels, folds=4)
    assert report.model.startswith("good C=") and model.embedders == ("good",)
    assert set(report.candidates) == {f"{e} C={c}" for e in ("noise", "good", "noise+good") for c in (1, 10, 100)}
    assert report.candidates[report.model]["accuracy"] == max(s["accuracy"] for s in report.candidates.values())
    assert report.candidates["noise C=1"]["accuracy"] < 0.5 < report.accuracy
    labels_out, _, _ = model.predict({"good": informative, "noise": noise})  # it reads its own embedder's rows
    assert np.mean(np.array(labels_out) == np.array(labels)) > 0.9
    fixed, fixed_report = small.fit({"good": informative}, labels, regularization=3.0)
    assert fixed_report.model == "good C=3" and fixed_report.candidates == {}


class ScriptedLLM(FaultServer):
    """A chat server that answers each banking question with a label and token logprobs: the gold label for
    ``accuracy`` of the questions (confident), a wrong one otherwise (less confident)."""

    def __init__(self, rows: list[dict], accuracy: float):
        super().__init__()
        rng = np.random.default_rng(7)
        self.answers = {}
        for row in rows:
            right = rng.random() < accuracy
            wrong = LABELS[(LABELS.index(row["label"]) + 1) % len(LABELS)]
            self.answers[row["text"]] = (row["label"], 0.9) if right else (wrong, float(rng.uniform(0.5, 0.95)))

    def _next_action(self, body: dict) -> str:
        super()._next_action(body)
        label, p = self.answers[body["messages"][-1]["content"]]
        other = LABELS[(LABELS.index(label) + 2) % len(LABELS)]
        def entry(token: str, logprob: float, top: dict[str, float] | None = None) -> dict:
            alternatives = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in (top or {}).items()]
            return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": alternatives}
        self.logprobs = [entry('{"', 0.0), entry("label", 0.0), entry('":', 0.0), entry(' "', 0.0),
                         entry(label, math.log(p), {label: math.log(p), other: math.log(1 - p)}), entry('"}', 0.0)]
        return "ok:" + json.dumps({"label": label})


def test_the_llm_and_the_small_model_combined_route_the_llm_answers_when_they_beat_each_alone(tmp_path, embedder):
    rows = banking(per_label=40)
    learn = "{small_model: {min_examples: 20, extra_embedders: []}}"
    with make(tmp_path, rows, learn=learn, gold=80) as project:
        llm = ScriptedLLM(rows, accuracy=0.8)
        project.label(base_url=llm.base_url, **FAST)
        llm.close()
        result = project.train()
        combination = result.combination
        assert combination is not None and combination.gold_items == 80
        rows_by_labeler = {row["labeler"]: row for row in result.crossover.rows}
        assert combination.accuracy > rows_by_labeler["llm"]["accuracy"] + 0.1  # the small model fixes LLM errors
        assert combination.used and combination.auto_accept_share > rows_by_labeler["small"]["auto_accept_share"]
        assert combination.threshold["lower_bound"] >= 0.95
        gold = {r["id"]: r["label"] for r in rows}
        answers = project.store.current_predictions("llm")
        accepted = [r for r in answers if r["route"] == "accepted" and r["item_id"] not in set(list(gold)[:80])]
        assert len(accepted) > 20
        assert np.mean([json.loads(r["output"])["label"] == gold[r["item_id"]] for r in accepted]) >= 0.95
        assert all("combined_accepts" in json.loads(r["reasons"]) for r in accepted if r["route"] == "accepted")
        assert len(project.store.current_predictions("combined")) == 200


def test_train_needs_enough_people_labels(tmp_path, embedder):
    with (make(tmp_path, banking(per_label=4), gold=10) as project,
          pytest.raises(ProjectError, match="needs 20 people-labeled items")):
        project.train()


def test_small_model_alone_saves_llm_calls_and_its_labels_are_exported(tmp_path, embedder):
    rows = banking(per_label=40)
    learn = "{small_model: {min_examples: 20}, policy: {small_alone: true, target_precision: 0.9}}"
    with make(tmp_path, rows, learn=learn, gold=150) as project:
        project.train()
        settled = project.store.count_settled("small")
        assert settled > 20
        fault = FaultServer(content=json.dumps({"label": "exchange_rate"}))
        run = project.label(base_url=fault.base_url, timeout=2, retries=0, backoff=0.01, concurrency=1)
        fault.close()
        assert run.settled_by_small == settled
        assert run.counts.items_done == 200 - settled  # the LLM was not called for the settled items
        out = tmp_path / "labels.jsonl"
        project.export(out)
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert sum(r["source"] == "human" for r in records) == 150
        assert any(r["source"] == "model" and r["model"].startswith("small-") for r in records)


# -- few-shot from corrections -----------------------------------------------------------------------


def test_few_shot_examples_are_the_nearest_people_labels_one_per_label_first(tmp_path, embedder):
    rows = banking(per_label=10)
    with make(tmp_path, rows, learn="{fewshot: 3}", gold=40) as project:
        fault = FaultServer(content=json.dumps({"label": "card_arrival"}))
        project.label(LabelOptions(limit=3), base_url=fault.base_url, timeout=2, retries=0, backoff=0.01,
                      concurrency=1)
        fault.close()
        [call, *_] = [json.loads(c["request"]) for c in reversed(project.store.recent_calls(3))]
    messages = call["item_messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3 + ["user"]
    answers = [json.loads(m["content"])["label"] for m in messages if m["role"] == "assistant"]
    assert len(set(answers)) == 3  # label-diverse
    by_text = {r["text"]: r for r in rows}
    item = by_text[messages[-1]["content"]]
    shown = [by_text[m["content"]] for m in messages[:-1] if m["role"] == "user"]
    assert {r["id"] for r in shown} <= {r["id"] for r in rows[:40]} and item not in shown  # people's labels only
    assert [json.loads(a)["label"] for a in (m["content"] for m in messages if m["role"] == "assistant")] == [
        r["label"] for r in shown]  # each example with its own gold label
    assert item["label"] in answers  # the nearest of the item's own intent is among them


# -- active learning ---------------------------------------------------------------------------------


def test_k_center_greedy_spreads_picks_over_clusters():
    rng = np.random.default_rng(1)
    centers = np.eye(4)
    vectors = np.vstack([c + rng.normal(0, 0.05, size=(25, 4)) for c in centers])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picks = k_center_greedy(vectors, np.arange(100), np.array([], dtype=int), 4)
    assert sorted(p // 25 for p in picks) == [0, 1, 2, 3]
    uncertain = np.zeros(100)
    uncertain[:25] = 1.0  # only cluster 0 is uncertain
    none = np.array([], dtype=int)
    assert all(p < 25 for p in select_batch(vectors, uncertain, np.arange(100), none, 3, widen=8))  # uncertain first
    wide = select_batch(vectors, uncertain, np.arange(100), none, 3, widen=20)  # 60 candidates: 3 clusters
    assert len({p // 25 for p in wide}) == 3  # diversity among them


def test_active_review_order_differs_from_lowest_confidence_and_is_diverse(tmp_path, embedder):
    rows = banking(per_label=12)
    with make(tmp_path, rows, learn="{review_order: active}") as project:
        project.embed()
        fault = FaultServer()  # no logprobs: every item waits for review, confidence unknown
        project.label(base_url=fault.base_url, timeout=2, retries=0, backoff=0.01, concurrency=1)
        fault.close()
        first = review_queue(project.store, project.spec, "ana", limit=5)
    labels = {r["id"]: r["label"] for r in rows}
    assert len({labels[i.item_id] for i in first}) >= 4  # five picks spread over the intents
    assert [i.item_id for i in first] != [r["id"] for r in rows[:5]]


# -- duplicates --------------------------------------------------------------------------------------


def test_duplicates_are_grouped_and_a_decided_label_is_proposed_to_the_group(tmp_path):
    rows = [{"id": "a", "text": "How do I top up my card?", "label": "top_up_failed"},
            {"id": "b", "text": "how do I  top up my card?", "label": "top_up_failed"},
            {"id": "c", "text": "How do I top up my new card?", "label": "top_up_failed"},
            {"id": "d", "text": "What is the exchange rate today?", "label": "exchange_rate"}]
    with make(tmp_path, rows, gold=1) as project:
        report = project.find_duplicates()
        assert (report.exact_groups, report.near_groups, report.grouped_items, report.proposed) == (0, 1, 3, 2)
        proposals = {r["item_id"]: r for r in project.store.current_predictions("duplicates")}
        assert proposals["b"]["route"] == "accepted"  # the same text as the labeled one
        assert proposals["c"]["route"] == "needs_review"
        assert json.loads(proposals["c"]["reasons"]) == ["near_duplicate_of:a"]
        assert json.loads(proposals["c"]["output"]) == {"label": "top_up_failed"}
        out = tmp_path / "labels.jsonl"
        project.export(out)
        exported = {json.loads(line)["id"]: json.loads(line) for line in out.read_text().splitlines()}
        assert set(exported) == {"a", "b"} and exported["b"]["model"] == "duplicates"


# -- simulate ----------------------------------------------------------------------------------------


def blobs(n_per: int = 150, classes: int = 4, spread: float = 0.45, seed: int = 0) -> Labels:
    """Gaussian clusters around orthogonal centres: a task a linear model learns well."""
    rng = np.random.default_rng(seed)
    vectors = np.vstack([np.eye(16)[c] * 3 + rng.normal(0, spread * 3, size=(n_per, 16)) for c in range(classes)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Labels(np.array([str(c) for c in range(classes) for _ in range(n_per)]), vectors.astype(np.float32))


def test_simulation_reaches_the_targets_with_less_than_all_the_work():
    result = simulate(blobs(300, spread=0.35), SimulationConfig(targets=[0.95, 0.98], batch=40))
    for target, most in ((0.95, 0.4), (0.98, 0.75)):
        best = result.best(target)
        assert best is not None and best.effort < most and best.dataset_accuracy >= target
        assert best.accepted_by_small == best.accepted and best.labeler == "small model"
        assert best.effort >= result.oracle[target]["effort"]  # an oracle knows when to stop; we must prove it
    assert result.curves["small model"][0][1] >= result.curves["small model"][-1][1]  # confident first
    first = result.small_model["choices"][0]  # chosen by cross-validation among the strengths
    assert set(first["scores"]) == {"embeddings C=1", "embeddings C=10", "embeddings C=100"}
    assert first["scores"][first["chosen"]]["accuracy"] == max(s["accuracy"] for s in first["scores"].values())


def test_the_guarantee_holds_over_resamples():
    """Over 50 resampled datasets, the realized dataset accuracy reaches the target in at least the stated
    confidence share of runs (the certification is exact; this checks the whole loop around it)."""
    config = dict(targets=[0.95], batch=20, strengths=(10.0,), level=0.9)
    reached, accepted = [], []
    for seed in range(50):
        result = simulate(blobs(100, spread=0.5, seed=100 + seed), SimulationConfig(seed=seed, **config))
        point = result.points[0]
        reached.append(point.dataset_accuracy >= 0.95)
        accepted.append(point.accepted > 0)
    assert np.mean(reached) >= 0.9
    assert np.mean(accepted) >= 0.9  # not by doing everything by hand


def with_llm(accuracy: float, informative: bool) -> Labels:
    """Blobs plus a simulated LLM: right ``accuracy`` of the time; its confidence tells right from wrong or not."""
    data = blobs(300, seed=2)
    rng = np.random.default_rng(3)
    right = rng.random(len(data.gold)) < accuracy
    data.llm_label = np.where(right, data.gold, "0")
    data.llm_confidence = (np.where(right, rng.uniform(0.6, 1.0, len(right)), rng.uniform(0.0, 0.8, len(right)))
                           if informative else rng.uniform(0.0, 1.0, len(right)))
    return data


def test_a_weak_llm_is_carried_by_the_small_model_a_strong_one_is_combined_with_it():
    config = SimulationConfig(targets=[0.95], batch=40)
    weak = with_llm(0.7, informative=False)
    flywheel, llm_only = simulate(weak, config, "flywheel"), simulate(weak, config, "llm_only")
    assert flywheel.best(0.95).effort < 0.5 < 0.8 < llm_only.best(0.95).effort
    assert flywheel.best(0.95).labeler != "LLM"
    strong = with_llm(0.9, informative=True)
    flywheel, llm_only = simulate(strong, config, "flywheel"), simulate(strong, config, "llm_only")
    assert flywheel.best(0.95).effort < llm_only.best(0.95).effort < 0.5
    assert flywheel.best(0.95).dataset_accuracy >= 0.95 and llm_only.best(0.95).accepted_by_small == 0
    random = simulate(strong, config, "random")  # the oracle baseline: random batches, the small model
    assert random.oracle[0.95]["effort"] > flywheel.oracle[0.95]["effort"]


def test_simulate_cli_outside_a_project(tmp_path, embedder):
    from typer.testing import CliRunner

    from labelloop.cli import app

    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n"
                            for r in banking(per_label=60)), encoding="utf-8")
    result = CliRunner().invoke(app, ["simulate", "--gold", str(gold), "--kind", "classify", "--no-llm",
                                      "--batch", "30", "--target", "0.95", "--out", str(tmp_path / "sim")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("effort to 95%: "))
    assert float(line.split(": ")[1].split("%")[0]) < 100 and "guaranteed at 90%" in line
    baselines = " ".join(result.output.split()).split("baselines for 95%: ")[1]
    assert "active learning, oracle-stopped" in baselines and "random batches, oracle-stopped" in baselines
    assert {p.name for p in (tmp_path / "sim").iterdir()} == {"curves.png", "report.html", "simulation.json"}
    assert (tmp_path / "sim" / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_embed_train_with_a_plot_and_calibrate_through_the_cli(tmp_path, embedder):
    from typer.testing import CliRunner

    from labelloop.cli import app

    runner = CliRunner()
    with make(tmp_path, banking(per_label=8), gold=30) as project:
        root = str(project.root)
    first = runner.invoke(app, ["embed", "--project", root])
    assert first.exit_code == 0 and "40 items embedded with all-MiniLM-L6-v2" in first.output
    assert "40 items embedded with multilingual-e5-small" in first.output  # the small model's other embedder
    assert "0 items embedded" in runner.invoke(app, ["embed", "--project", root]).output
    plot = tmp_path / "reliability.png"
    trained = runner.invoke(app, ["train", "--plot", str(plot), "--project", root])
    assert trained.exit_code == 0, trained.output
    assert "small model: 30 people-labeled items, 5 labels" in trained.output
    assert "chosen by cross-validation among 9 candidates: " in " ".join(trained.output.split())
    assert f"reliability diagram: {plot}" in " ".join(trained.output.split())
    assert plot.read_bytes().startswith(b"\x89PNG")
    calibrated = runner.invoke(app, ["calibrate", "--as", "small", "--json", "--project", root])
    assert calibrated.exit_code == 0, calibrated.output
    result = json.loads(calibrated.output)
    assert (result["labeler"], result["items"]) == ("small", 30) and 0 <= result["ece_after"] <= 1
    missing = runner.invoke(app, ["calibrate", "--as", "nobody", "--project", root])
    assert missing.exit_code == 1 and "calibrating nobody needs its answers" in missing.output
