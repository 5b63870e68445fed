"""Terminal review: one item at a time, lowest confidence first, driven by single keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import labelers
from ..spec import ClassifySpec, TaskSpec
from ..store import Store
from . import (
    Dispute,
    QueueItem,
    ReviewError,
    adjudicate,
    adjudication_queue,
    field_choices,
    parse_field_value,
    review_queue,
    skip,
    submit,
)
from .hold import next_item, release

HELP = {
    "a": "accept the answer shown",
    "e": "edit a field",
    "N": "pick label number N (classify)",
    "s": "skip this item",
    "q": "quit",
    "?": "show these keys",
}
ADJUDICATION_HELP = {**HELP, "N": "take answer number N as the decision"}


@dataclass
class ReviewSummary:
    reviewed: int = 0
    skipped: int = 0
    left: int = 0


class TerminalReview:
    """The review loop; ``ask`` reads one line (``input`` by default), so tests drive it through stdin."""

    def __init__(
        self,
        store: Store,
        spec: TaskSpec,
        reviewer: str,
        *,
        labeler: str = labelers.LLM,
        ask: Callable[[str], str] = input,
        console: Console | None = None,
        limit: int | None = None,
        adjudicating: bool = False,
    ):
        self.store, self.spec, self.reviewer, self.labeler = store, spec, reviewer, labeler
        self.ask, self.console, self.limit = ask, console or Console(), limit
        self.adjudicating = adjudicating
        self.summary = ReviewSummary()
        self._skipped: set[str] = set()
        self._dispute: Dispute | None = None
        self._disputes: dict[str, Dispute] = {}

    def run(self) -> ReviewSummary:
        """Review until the queue is empty, the limit is reached or the reviewer quits."""
        while (item := self._next()) is not None:
            if self.limit is not None and self.summary.reviewed >= self.limit:
                break
            try:
                if not self._review(item):
                    break
            finally:
                if not self.adjudicating:
                    release(self.store, item.item_id, self.reviewer)
        self.summary.left = len(self._queue(100_000))
        return self.summary

    def _queue(self, limit: int) -> list[QueueItem]:
        if self.adjudicating:
            disputes = adjudication_queue(self.store, self.spec, self.labeler, limit)
            self._disputes = {d.item.item_id: d for d in disputes}
            return [d.item for d in disputes]
        return review_queue(self.store, self.spec, self.reviewer, self.labeler, limit=limit)

    def _next(self) -> QueueItem | None:
        """The next item: for review, one nobody else holds, now held for this reviewer."""
        if not self.adjudicating:
            skipped = self._skipped
            return next_item(
                self.store,
                self.spec,
                self.reviewer,
                self.labeler,
                order=lambda found: [item for item in found if item.item_id not in skipped],
                extra=len(skipped),
            )
        queue = self._queue(len(self._skipped) + 1)
        return next((item for item in queue if item.item_id not in self._skipped), None)

    def _review(self, item: QueueItem) -> bool:
        """Handle one item; False when the reviewer quits."""
        self._dispute = self._disputes.get(item.item_id) if self.adjudicating else None
        start = self._dispute.tentative if self._dispute else item.output
        draft = dict(start) if start else dict.fromkeys(self.spec.output_fields)
        self._show(item, draft)
        while True:
            try:
                key = self.ask("> ").strip().lower()
            except EOFError:
                return False
            if key == "q":
                return False
            if key == "s":
                skip(self.store, item, self.reviewer)
                self._skipped.add(item.item_id)
                self.summary.skipped += 1
                return True
            if key == "?":
                self._help()
            elif key == "e":
                self._edit(draft)
                self._show(item, draft)
            elif key == "a" or (key.isdigit() and (self.adjudicating or isinstance(self.spec, ClassifySpec))):
                if self._save(item, draft, key):
                    return True
            else:
                self.console.print("unknown key; ? shows the keys")

    def _save(self, item: QueueItem, draft: dict[str, Any], key: str) -> bool:
        if key.isdigit() and self._dispute is not None:
            answers = list(self._dispute.answers.values())
            if not 1 <= int(key) <= len(answers):
                self.console.print(f"pick 1-{len(answers)}")
                return False
            draft = answers[int(key) - 1]
        elif key.isdigit():
            assert isinstance(self.spec, ClassifySpec), "a number key picks a label only in a classify task"
            labels = self.spec.label_names
            if not 1 <= int(key) <= len(labels):
                self.console.print(f"pick 1-{len(labels)}")
                return False
            draft, action = {"label": labels[int(key) - 1]}, "label"
        if self.adjudicating:
            action = "adjudicate"
        elif not key.isdigit():
            action = "accept" if draft == item.output else "edit"
        try:
            if self.adjudicating:
                adjudicate(self.store, self.spec, item, self.reviewer, draft)
            else:
                submit(self.store, self.spec, item, self.reviewer, draft, action, labeler=self.labeler)
        except ReviewError as exc:
            self.console.print(Text(f"not saved: {exc.field or 'answer'}: {exc.reason}", style="red"))
            return False
        self.summary.reviewed += 1
        self.console.print(f"saved ({action})")
        return True

    def _edit(self, draft: dict[str, Any]) -> None:
        fields = self.spec.output_fields
        number = self._ask_line("field number: ")
        if number is None or not number.isdigit() or not 1 <= int(number) <= len(fields):
            self.console.print(f"pick a field 1-{len(fields)}")
            return
        name = fields[int(number) - 1]
        choices = field_choices(self.spec, name)
        if choices:
            self.console.print(Text("  ".join(f"{i}) {c}" for i, c in enumerate(choices, 1))))
        raw = self._ask_line(f"{name} (empty = null): ")
        if raw is None:
            return
        try:
            draft[name] = parse_field_value(self.spec, name, raw)
        except ReviewError as exc:
            self.console.print(Text(f"{name}: {exc.reason}", style="red"))

    def _ask_line(self, prompt: str) -> str | None:
        try:
            return self.ask(prompt)
        except EOFError:
            return None

    def _show(self, item: QueueItem, draft: dict[str, Any]) -> None:
        confidence = "-" if item.confidence is None else f"{item.confidence:.2f}"
        self.console.rule(f"{item.item_id}  confidence {confidence}  ({item.route})")
        self.console.print(Text(item.text))  # item text is untrusted: never parsed as markup
        self.console.print(Text("reasons: " + (", ".join(item.reasons) or "-"), style="yellow"))
        table = Table(show_header=True)
        for column in ("#", "field", "value", "confidence"):
            table.add_column(column)
        for number, name in enumerate(self.spec.output_fields, 1):
            value = item.field_confidence.get(name)
            table.add_row(str(number), name, Text(repr(draft.get(name))), "-" if value is None else f"{value:.2f}")
        self.console.print(table)
        if self._dispute is not None:
            self._show_answers(self._dispute)
        elif isinstance(self.spec, ClassifySpec):
            self.console.print(Text("  ".join(f"{i}) {n}" for i, n in enumerate(self.spec.label_names, 1))))
        keys = "[a]ccept  [e]dit  " + (
            "[number] answer  " if self._dispute else "[number] label  " if isinstance(self.spec, ClassifySpec) else ""
        )
        self.console.print(Text(keys + "[s]kip  [q]uit  [?] keys"))

    def _show_answers(self, dispute: Dispute) -> None:
        agreement = "-" if dispute.agreement is None else f"{dispute.agreement:.2f}"
        table = Table(title=f"answers (agreement {agreement})", show_header=True)
        for column in ("#", "by", *self.spec.output_fields):
            table.add_column(column)
        for number, (who, output) in enumerate(dispute.answers.items(), 1):
            table.add_row(str(number), Text(who), *(Text(repr(output.get(f))) for f in self.spec.output_fields))
        self.console.print(table)

    def _help(self) -> None:
        for key, meaning in (ADJUDICATION_HELP if self.adjudicating else HELP).items():
            self.console.print(Text(f"  {key:4} {meaning}"))
