"""The store's documents: every version of each document (the current one marked), and each version's
paragraphs with their offsets and sentences (see :mod:`labelloop.documents`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ._base import StoreBase
from ._common import chunks, utc_now


class DocumentStore(StoreBase):
    """Mixed into :class:`~labelloop.store.Store`; the SQL of documents and paragraphs."""

    def document_hashes(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """The current version's (content hash, collection) of each of ``ids`` that is stored."""
        found: dict[str, tuple[str, str]] = {}
        for chunk in chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT id, content_hash, collection FROM documents WHERE is_current = 1 AND id IN ({marks})", chunk
            )
            found.update((r[0], (r[1], r[2])) for r in rows)
        return found

    def save_documents(
        self, documents: Sequence[tuple[Any, Sequence[Any]]], collection: str = "default"
    ) -> dict[str, int]:
        """Store each (document, paragraphs) as the document's next version in ``collection``, in the caller's
        transaction; the earlier version stays (no longer current). The version each document got."""
        now, db = utc_now(), self.db
        versions: dict[str, int] = {}
        for document, paragraphs in documents:
            last = db.execute("SELECT max(version) FROM documents WHERE id = ?", (document.id,)).fetchone()[0]
            version = (last or 0) + 1
            db.execute("UPDATE documents SET is_current = 0 WHERE id = ? AND is_current = 1", (document.id,))
            db.execute(
                "INSERT INTO documents (id, version, is_current, text, content_hash, title, source, updated_at,"
                " ingested_at, collection) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
                (document.id, version, document.text, document.content_hash, document.title, document.source,
                 document.updated_at, now, collection),
            )  # fmt: skip
            db.executemany(
                'INSERT INTO paragraphs (doc_id, version, id, number, start, "end", sentences)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(document.id, version, p.id, p.number, p.start, p.end, json.dumps(p.sentences))
                 for p in paragraphs],
            )  # fmt: skip
            versions[document.id] = version
        return versions

    def document(self, doc_id: str, version: int | None = None) -> sqlite3.Row | None:
        """A document's current version, or the given one."""
        if version is None:
            return self.db.execute("SELECT * FROM documents WHERE id = ? AND is_current = 1", (doc_id,)).fetchone()
        return self.db.execute("SELECT * FROM documents WHERE id = ? AND version = ?", (doc_id, version)).fetchone()

    def paragraphs(self, doc_id: str, version: int) -> list[sqlite3.Row]:
        """A document version's paragraphs in order."""
        return self.db.execute(
            'SELECT id, number, start, "end", sentences FROM paragraphs WHERE doc_id = ? AND version = ?'
            " ORDER BY number",
            (doc_id, version),
        ).fetchall()

    def count_documents(self) -> tuple[int, int]:
        """(documents, paragraphs of their current versions)."""
        row = self.db.execute(
            "SELECT (SELECT count(*) FROM documents WHERE is_current = 1), (SELECT count(*) FROM paragraphs p"
            " JOIN documents d ON d.id = p.doc_id AND d.version = p.version WHERE d.is_current = 1)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def current_paragraphs(self, collection: str) -> list[tuple[str, int, str | None, str, str, int, int]]:
        """(doc_id, version, title, document text, paragraph id, start, end) of the paragraphs of every current
        version in ``collection``, by doc_id and number; a document's paragraphs share one text object."""
        rows = self.db.execute(
            'SELECT p.doc_id, p.version, p.id, p.start, p."end" FROM paragraphs p JOIN documents d'
            " ON d.id = p.doc_id AND d.version = p.version WHERE d.is_current = 1 AND d.collection = ?"
            " ORDER BY p.doc_id, p.number",
            (collection,),
        ).fetchall()
        versions = {
            (r[0], r[1]): (r[2], r[3])
            for r in self.db.execute(
                "SELECT id, version, title, text FROM documents WHERE is_current = 1 AND collection = ?", (collection,)
            )
        }
        found = []
        for doc_id, version, paragraph, start, end in rows:
            if (doc_id, version) not in versions:  # a newer version came in between the two reads
                row = self.db.execute(
                    "SELECT title, text FROM documents WHERE id = ? AND version = ?", (doc_id, version)
                ).fetchone()
                versions[doc_id, version] = (row[0], row[1])
            title, text = versions[doc_id, version]
            found.append((doc_id, version, title, text, paragraph, start, end))
        return found
