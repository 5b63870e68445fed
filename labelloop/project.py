"""A project: a directory holding ``labelloop.yaml`` and its store (``labelloop.db`` beside it by default, or the
PostgreSQL database ``store:`` or ``LABELLOOP_DATABASE_URL`` names).

:class:`Project` finds the spec and opens the store; every method forwards to the stage function
that does the work (the same functions the module-level API exposes), so the CLI, the library and
the web app run the same stages in the same order.

Long on purpose: the library's one facade, a short forwarding method per command.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import labelers
from ._actor import actor_or_default
from ._extras import require
from ._files import atomic_output
from .aggregate import AggregateResult, aggregate
from .annotations import AnnotationImport, ingest_annotations
from .dedup import DuplicateReport, group_and_propose
from .documents import DocumentIngest, ingest_documents, sql_documents
from .engine import ProgressSink, RunResult, label
from .errors import MissingExtra, ProjectError
from .export import ExportResult, export
from .ingest import IngestResult, ingest_file
from .ingest_sql import SqlIngestResult, ingest_sql
from .job import LabelOptions
from .labelstudio import ImportResult, SyncResult, import_export, sync
from .lake import RayOptions, RayRunResult, label_on_ray
from .people import guidelines, test_questions
from .people.digest import Digest, digest
from .people.qualification import Qualification, qualification
from .plan import Plan, make_plan
from .prepare import reveal
from .relocate import Relocation, relocate
from .review import Dispute, add_reviewer, adjudication_queue
from .review.terminal import ReviewSummary, TerminalReview
from .spec import SPEC_FILENAME, ModelSettings, TaskSpec, load_spec, template_text
from .status import StatusSummary, status_summary
from .store import Store, is_url

if TYPE_CHECKING:
    from .agree import AgreementReport
    from .compare.run import Comparison
    from .learn.loop import Calibration, TrainResult
    from .learn.simulation_report import Replay
    from .monitor.batches import DriftReport
    from .people.scores import AnnotatorScore
    from .report import ProjectReport

DB_FILENAME = "labelloop.db"
DATABASE_URL_VARIABLE = "LABELLOOP_DATABASE_URL"


@dataclass
class Project:
    """The library's entry point: everything the CLI does is a method here."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @classmethod
    def init(cls, directory: str | Path, template: str = "sentiment") -> Project:
        """Create a project directory with a task spec from a bundled template."""
        root = Path(directory)
        spec_path = root / SPEC_FILENAME
        if spec_path.exists():
            raise ProjectError(f"{spec_path}: a project already exists here")
        text = template_text(template)
        root.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(text, encoding="utf-8")
        project = cls(root)
        _ = project.spec  # validate the template before anything else is written
        _ = project.store  # then create the database
        return project

    @classmethod
    def find(cls, directory: str | Path | None = None) -> Project:
        """The project at ``directory``, or the nearest one at or above the working directory."""
        if directory is not None:
            root = Path(directory)
            if not (root / SPEC_FILENAME).is_file():
                raise ProjectError(f"{root}: no {SPEC_FILENAME} here; create one with 'labelloop init'")
            return cls(root)
        here = Path.cwd().resolve()
        for candidate in (here, *here.parents):
            if (candidate / SPEC_FILENAME).is_file():
                return cls(candidate)
        raise ProjectError(f"no {SPEC_FILENAME} in {here} or above; run 'labelloop init DIR' or pass --project")

    @property
    def spec_path(self) -> Path:
        return self.root / SPEC_FILENAME

    @property
    def db_path(self) -> Path:
        return self.root / DB_FILENAME

    @property
    def spec(self) -> TaskSpec:
        """The task spec, parsed again whenever ``labelloop.yaml`` changes on disk."""
        try:
            text: bytes | None = self.spec_path.read_bytes()
        except FileNotFoundError:
            text = None
        cached = self.__dict__.get("_spec")
        if cached is None or cached[0] != text:
            self.__dict__["_spec"] = (text, load_spec(self.spec_path))
        spec: TaskSpec = self.__dict__["_spec"][1]
        return spec

    @property
    def database(self) -> str | Path:
        """Where the store lives: ``LABELLOOP_DATABASE_URL``, else the spec's ``store``, else ``labelloop.db`` here."""
        location = os.environ.get(DATABASE_URL_VARIABLE) or self.spec.store
        if not location:
            return self.db_path
        return location if is_url(location) else self.root / location

    @cached_property
    def store(self) -> Store:
        return Store.open(self.database)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
            del self.__dict__["store"]

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def settings(self, **overrides: Any) -> ModelSettings:
        """The spec's model settings with ``LABELLOOP_*`` variables and ``overrides`` applied."""
        return self.spec.model.with_overrides(overrides)

    # -- the pipeline, in order ------------------------------------------------------------

    def ingest(
        self,
        path: str | Path,
        *,
        text_field: str | None = None,
        id_field: str | None = None,
        fmt: str | None = None,
        skip_bad: str | Path | None = None,
        clean: str | None = None,
        actor: str | None = None,
    ) -> IngestResult:
        """Add a file's records as items, cleaned and masked as the spec says (see :func:`~labelloop.ingest_file`)."""
        return ingest_file(
            self.store,
            self.spec,
            path,
            text_field=text_field,
            id_field=id_field,
            fmt=fmt,
            skip_bad=skip_bad,
            clean=clean,
            actor=actor,
        )

    def ingest_docs(
        self,
        paths: list[str | Path],
        *,
        collection: str | None = None,
        from_sql: tuple[str, str] | None = None,
        actor: str | None = None,
    ) -> DocumentIngest:
        """Add documents (text, Markdown, JSONL files or directories of them) to ``collection`` (a ``qa`` spec's own
        by default), split into paragraphs; changed ones become a new version and unchanged ones add nothing (see
        :mod:`labelloop.documents`). ``from_sql``: (URL, query) whose rows (``id``, ``text``, ``title``,
        ``updated_at``) are documents too. For ``qa_generate`` each new paragraph is also an item."""
        collection = collection or str(getattr(self.spec, "collection", "default"))
        paragraph_items = self.spec.kind == "qa_generate"
        read = sql_documents(*from_sql) if from_sql else None
        return ingest_documents(
            self.store, paths, collection=collection, paragraph_items=paragraph_items, read=read, actor=actor
        )

    def ingest_sql(
        self,
        url: str,
        query: str,
        *,
        since_column: str | None = None,
        text_field: str | None = None,
        id_field: str | None = None,
        actor: str | None = None,
    ) -> SqlIngestResult:
        """Add the rows of a database query as items, from the source's watermark on; changed rows are labeled
        and reviewed again (see :func:`~labelloop.ingest_sql.ingest_sql`)."""
        return ingest_sql(
            self.store,
            self.spec,
            url,
            query,
            since_column=since_column,
            text_field=text_field,
            id_field=id_field,
            actor=actor,
        )

    def plan(self, options: LabelOptions | None = None, **overrides: Any) -> Plan:
        """What ``label`` would do: items, calls, a token estimate and the first prompt."""
        return make_plan(self.store, self.spec, self.settings(**overrides), options or LabelOptions())

    def label(
        self,
        options: LabelOptions | None = None,
        progress: ProgressSink | None = None,
        *,
        actor: str | None = None,
        **overrides: Any,
    ) -> RunResult:
        """Label the pending items (see :func:`~labelloop.label`); ``overrides`` change model settings."""
        return label(self.store, self.spec, self.settings(**overrides), options=options, progress=progress, actor=actor)

    def label_on_ray(
        self,
        ray: RayOptions | None = None,
        options: LabelOptions | None = None,
        progress: ProgressSink | None = None,
        *,
        actor: str | None = None,
        **overrides: Any,
    ) -> RayRunResult:
        """Label with the Ray runner (:func:`~labelloop.lake.label_on_ray`; the ``ray`` extra): the pending items,
        or with ``ray.inputs`` files that never enter the store (only their items to review are imported)."""
        settings = self.settings(**overrides)
        return label_on_ray(
            self.store, self.spec, settings, options=options, ray_options=ray, progress=progress, actor=actor
        )

    def status(self) -> StatusSummary:
        """Counts by status, errors, tokens and the recent runs; with a ``monitor:`` block in the spec (and the
        ``agree`` extra), the latest batch's drift alarms (:meth:`monitor`)."""
        summary = status_summary(self.store)
        if "monitor" in self.spec.model_fields_set:  # the alarm reads every item: only when asked for
            with contextlib.suppress(MissingExtra):  # the core install has no scipy: no drift alarm then
                summary.drift = self.monitor().latest_alarms
        return summary

    def monitor(self, labeler: str = labelers.LLM) -> DriftReport:
        """The drift alarm: each batch of items against the first ones (``monitor:`` in the spec; needs the
        ``agree`` extra); a ``DriftReport``."""
        batches = require("labelloop.monitor.batches", "agree", "the drift alarm (monitor)")
        return batches.drift_report(self.store, self.spec, labeler, root=self.root)

    def report(self, out: str | Path | None = None, labeler: str = labelers.LLM) -> ProjectReport:
        """The project report (progress, states, cost, the model against people, people, prompt versions and
        comparisons, the flywheel, drift; needs the ``agree`` extra); also written as one self-contained HTML
        page to ``out`` when given."""
        module = require("labelloop.report", "agree", "the report")
        found: ProjectReport = module.gather(self.store, self.spec, labeler, root=self.root)
        if out is not None:
            module.write_report(found, out)
        return found

    def logs(self, count: int = 10, *, full: bool = False) -> list[dict[str, Any]]:
        """The most recent model calls, newest first; ``full`` adds request and raw response."""
        hidden = () if full else ("request", "response")
        return [{k: v for k, v in dict(row).items() if k not in hidden} for row in self.store.recent_calls(count)]

    # -- people ----------------------------------------------------------------------------

    def add_reviewer(self, name: str, role: str = "annotator", *, actor: str | None = None) -> str:
        """Register a reviewer for the web app; returns their token (shown once, stored hashed)."""
        return add_reviewer(self.store, name, role, actor=actor)

    def review_in_terminal(
        self,
        reviewer: str,
        *,
        labeler: str = labelers.LLM,
        limit: int | None = None,
        console: Any = None,
        adjudicate: bool = False,
    ) -> ReviewSummary:
        """Run the interactive terminal review (reads keys from stdin); ``adjudicate``: the expert's queue."""
        return TerminalReview(
            self.store, self.spec, reviewer, labeler=labeler, limit=limit, console=console, adjudicating=adjudicate
        ).run()

    def web_app(self, labeler: str = labelers.LLM) -> Any:
        """The review web app (FastAPI) for this project; needs the ``[web]`` extra."""
        web = require("labelloop.review.web", "web", "the review web app")
        return web.create_app(self.store, lambda: self.spec, labeler)  # the spec as it is now, at each request

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8400,
        *,
        labeler: str = labelers.LLM,
        starting: Callable[[str], None] | None = None,
    ) -> None:
        """Run the review web app until interrupted (``starting`` is told its address); needs the ``[web]`` extra."""
        web = require("labelloop.review.web", "web", "the review web app")
        web.serve(self.store, lambda: self.spec, host, port, labeler=labeler, starting=starting)

    def import_annotations(
        self,
        path: str | Path,
        *,
        item_field: str = "item",
        annotator_field: str = "annotator",
        value_field: str | None = "labels",
        fmt: str | None = None,
        labeler: str = labelers.LLM,
        fix_labels: bool = False,
    ) -> AnnotationImport:
        """Import answers made elsewhere (one row per item and annotator), all of the file or nothing;
        ``fix_labels`` accepts labels that differ from an allowed one only by brackets, quotes, spaces or case."""
        return ingest_annotations(
            self.store,
            self.spec,
            path,
            item_field=item_field,
            annotator_field=annotator_field,
            value_field=value_field,
            fmt=fmt,
            labeler=labeler,
            fix_labels=fix_labels,
        )

    def agree(
        self,
        *,
        models: bool = True,
        gold: str | Path | None = None,
        min_pair_items: int = 5,
        apply_rework: bool = False,
        heatmap: str | Path | None = None,
        actor: str | None = None,
    ) -> AgreementReport:
        """Agreement among people and models (see :func:`labelloop.agree.agree`; needs the ``[agree]`` extra)."""
        agree = require("labelloop.agree", "agree", "agreement")
        return agree.agree(
            self.store,
            self.spec,
            models=models,
            gold=gold,
            min_pair_items=min_pair_items,
            apply_rework=apply_rework,
            heatmap=heatmap,
            actor=actor,
        )

    def aggregate(self, *, force: bool = False) -> AggregateResult:
        """Decide each answered item's gold record (majority or Dawid-Skene; experts' decisions win)."""
        return aggregate(self.store, self.spec, force=force)

    def disputes(self, *, labeler: str = labelers.LLM, limit: int = 50) -> list[Dispute]:
        """Items waiting for an expert: answers that tie or agree too little, least agreed first."""
        return adjudication_queue(self.store, self.spec, labeler, limit)

    def add_test_questions(
        self, path: str | Path | None = None, *, from_experts: bool = False, actor: str | None = None
    ) -> int:
        """Add test questions (items with known answers, mixed into annotators' queues): the rows of ``path``
        (id, input fields, the right answer's fields), or every item an expert decided; how many are new."""
        if from_experts == (path is not None):
            raise ProjectError("test questions come from a file or from experts' decisions (--from-experts): one")
        if path is not None:
            return test_questions.add_from_file(self.store, self.spec, path, actor=actor)
        return test_questions.add_from_experts(self.store, actor=actor)

    def qualification(self, reviewer: str) -> Qualification:
        """Where ``reviewer`` stands with ``annotation.qualify``: qualified or not, each round's result."""
        return qualification(self.store, self.spec, reviewer)

    def annotators(self) -> list[AnnotatorScore]:
        """Each annotator's accuracy on test questions (Wilson interval), kappa against consensus and experts,
        time, throughput, trend, Dawid-Skene reliability, and who is flagged for retraining (``agree`` extra)."""
        return require("labelloop.people.scores", "agree", "annotators").annotator_scores(self.store, self.spec)

    def guideline_digest(
        self, *, propose: bool = False, out: str | Path | None = None, **model_overrides: Any
    ) -> Digest:
        """Disputes settled, corrections of the model and missed test questions, grouped by label pair (or
        field) with examples; ``propose`` asks the task's model for a draft guideline sentence per group;
        ``out`` also writes the Markdown draft there."""
        found = digest(self.store, self.spec)
        if propose and found.groups:
            guidelines.propose(self.store, self.spec, found, self.settings(**model_overrides))
        if out is not None:
            with atomic_output(Path(out)) as tmp:
                tmp.write_text(found.markdown(self.spec), encoding="utf-8")
        return found

    def accept_guideline(self, sentence: str, *, actor: str | None = None) -> tuple[str, str]:
        """Add ``sentence`` to the task's guidelines (the prompt version changes); the versions before and
        after, also kept in the audit log."""
        before, after = guidelines.accept(self.spec_path, sentence)
        self.store.audit(actor_or_default(actor), "guidelines-accept", before=before, after=after, detail=sentence)
        return before, after

    # -- the flywheel ----------------------------------------------------------------------

    def embed(self, progress: Any = None) -> dict[str, int]:
        """Embed every item that has no vector yet with each of the project's embedders (extra ``embed``);
        items embedded now by embedder name."""
        return _learn().embed_items(self.store, self.spec, progress)

    def train(self, *, labeler: str = labelers.LLM, plot: str | Path | None = None) -> TrainResult:
        """Train the small model on people's labels (cross-validated, calibrated, with a guaranteed threshold),
        label every item with it and cross-check ``labeler``; ``plot`` writes its reliability diagram."""
        return _learn().train(self.store, self.spec, self.root / "models", labeler, plot=plot)

    def calibrate(self, *, labeler: str = labelers.LLM, plot: str | Path | None = None) -> Calibration:
        """Calibrate ``labeler`` on the gold items: ECE before and after, the guaranteed threshold."""
        return _learn().calibrate(self.store, self.spec, labeler, plot)

    def compare(
        self,
        gold: str | Path,
        variants: list[str],
        *,
        html: str | Path | None = None,
        seed: int = 0,
        progress: ProgressSink | None = None,
        actor: str | None = None,
        **model_overrides: Any,
    ) -> Comparison:
        """Label ``gold`` with each variant (``current``, a spec file, or ``NAME:key=value,…``) and test each
        pair (see :mod:`labelloop.compare`; needs the ``agree`` extra); returns a ``Comparison``, also written
        as a page to ``html`` when given. ``model_overrides`` apply to every variant but what it sets itself."""
        run = require("labelloop.compare.run", "agree", "compare")
        from .compare.variants import parse_variants

        spec_text = self.spec_path.read_text(encoding="utf-8")
        chosen = parse_variants(variants, spec_text, str(self.spec_path), model_overrides)
        comparison = run.compare(self.store, self.root, gold, chosen, seed=seed, progress=progress, actor=actor)
        if html is not None:
            require("labelloop.compare.page", "agree", "compare").write_page(comparison, html)
        return comparison

    def simulate(self, gold: str | Path, *, actor: str | None = None, **options: Any) -> Replay:
        """Replay the loop on a gold file with this project's task
        (see :func:`labelloop.learn.replay.run_simulation`); its effort curve is kept in the audit log
        (action ``simulate``) for the report."""
        replay = require("labelloop.learn.replay", "embed", "simulate").run_simulation(gold, spec=self.spec, **options)
        curve = {"gold": str(gold), **replay.effort_curve()}
        self.store.audit(actor_or_default(actor), "simulate", detail=json.dumps(curve, ensure_ascii=False))
        return replay

    def find_duplicates(self, *, near: bool = True, threshold: float | None = None) -> DuplicateReport:
        """Group exact and near-duplicate items, and propose each group's decided label to the rest."""
        return group_and_propose(self.store, self.spec, near=near, threshold=threshold)

    # -- out -------------------------------------------------------------------------------

    def export(
        self,
        out: str | Path,
        fmt: str = "jsonl",
        *,
        labeler: str = labelers.LLM,
        keep_fields: list[str] | None = None,
        include_unreviewed: bool = False,
        actor: str | None = None,
        tokenizer: str = "auto",
    ) -> ExportResult:
        """Write the final labels (human answer, else accepted prediction) in format ``fmt`` (see
        :func:`labelloop.export.export`; ``labelstudio``: every item as a task, and the labeling config)."""
        return export(
            self.store,
            self.spec,
            out,
            fmt,
            labeler=labeler,
            keep_fields=keep_fields,
            include_unreviewed=include_unreviewed,
            actor=actor,
            tokenizer=tokenizer,
        )

    def import_labelstudio(self, path: str | Path, *, labeler: str = labelers.LLM) -> ImportResult:
        """Import a Label Studio JSON export as human annotations (again: nothing new); bad ones in ``errors``."""
        return import_export(self.store, self.spec, path, labeler=labeler)

    def sync_labelstudio(self, url: str, token: str, project_title: str, *, labeler: str = labelers.LLM) -> SyncResult:
        """Push the items waiting for review to a Label Studio project and pull its annotations (idempotent)."""
        return sync(self.store, self.spec, url, token, project_title, labeler=labeler)

    def migrate_store(
        self, to: str | Path, *, actor: str | None = None, progress: Callable[[str, int], None] | None = None
    ) -> Relocation:
        """Copy this project's data into the empty database ``to``, verified per table (rows and content hash);
        then point ``store:`` (or ``LABELLOOP_DATABASE_URL``) at it."""
        return relocate(self.store, to, actor=actor, progress=progress)

    # -- accountability --------------------------------------------------------------------

    def audit(
        self, *, action: str | None = None, actor: str | None = None, item: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The newest audit-log rows (who did what, when), filtered."""
        return [dict(row) for row in self.store.audit_rows(action=action, actor=actor, item_id=item, limit=limit)]

    def pii_findings(self, item_id: str) -> list[dict[str, Any]]:
        """Where PII was found in an item: type, offsets in the stored text, detector, action."""
        return [dict(row) for row in self.store.pii_entry(item_id)[1]]

    def reveal_pii(self, item_id: str, *, actor: str | None = None) -> dict[str, Any]:
        """The original text and placeholder values of one item, with the passphrase; logged in the audit log."""
        return reveal(self.store, self.spec, item_id, actor)


def _learn() -> Any:
    """:mod:`labelloop.learn.loop`, or a one-line error naming the extra it needs."""
    return require("labelloop.learn.loop", "embed", "the flywheel (embed, train, calibrate)")
