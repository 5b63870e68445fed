"""Documents for tasks that answer from text longer than an item (issue 19: ``qa``, coherence).

``labelloop ingest-docs PATH…`` reads text and Markdown files (one document each, named by the file) and JSONL
files (a document per row: ``id``, ``text``, optional ``title`` and ``updated_at``). Each document is split
into paragraphs at blank lines; each paragraph keeps its character offsets into the original text and its
sentences' offsets, with Chinese (。！？；) and English (. ! ? followed by a space) sentence ends, closing quotes
and brackets kept with their sentence. A paragraph's id is its content's hash (with a count for repeats), so
it stays the same when other paragraphs change. Documents are updated by content hash: unchanged ones add
nothing, a changed one becomes a new version and the old version stays, so answers citing it keep pointing at
the text they cited.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from ._actor import actor_or_default
from .errors import InputError
from .store import Store

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
_PARAGRAPH_BREAK = re.compile(r"\r?\n[ \t\u3000\r]*\n\s*")
_SENTENCE_END = re.compile(r"[。！？；!?]+[”’」』）)\]\"']*|\.+[”’\"')\]]*(?=\s|$)")
# a period after these (or after a single letter: "a.m.", "U.S.") does not end an English sentence
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "inc", "ltd", "jr"}


@dataclass(frozen=True)
class Paragraph:
    id: str
    number: int
    start: int
    end: int
    sentences: list[tuple[int, int]]  # offsets into the document's text


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str | None = None
    updated_at: str | None = None
    source: str | None = None

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def paragraphs(self) -> list[Paragraph]:
        return split_paragraphs(self.text)


@dataclass
class DocumentIngest:
    documents: int = 0  # read
    added: int = 0
    updated: int = 0  # changed: a new version
    unchanged: int = 0
    paragraphs: int = 0  # stored now
    items: int = 0  # paragraphs added as items (``qa_generate``: one item per paragraph)
    files: list[str] = field(default_factory=list)


def split_paragraphs(text: str) -> list[Paragraph]:
    """Paragraphs at blank lines, with offsets into ``text`` and their sentences (see the module docstring)."""
    found: list[Paragraph] = []
    seen: Counter[str] = Counter()
    position = 0
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        start, stop = _stripped(text, position, end)
        if stop > start:
            digest = hashlib.sha256(text[start:stop].encode("utf-8")).hexdigest()[:12]
            seen[digest] += 1
            suffix = f"-{seen[digest]}" if seen[digest] > 1 else ""
            sentences = split_sentences(text, start, stop)
            found.append(Paragraph(f"p{digest}{suffix}", len(found) + 1, start, stop, sentences))
        position = match.end() if match else len(text)
    return found


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence offsets in ``text[start:end]`` (Chinese and English sentence ends)."""
    end = len(text) if end is None else end
    sentences, position = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group().startswith(".") and _abbreviation(text, start, match.start()):
            continue
        left, right = _stripped(text, position, match.end())
        if right > left:
            sentences.append((left, right))
        position = match.end()
    left, right = _stripped(text, position, end)
    if right > left:
        sentences.append((left, right))
    return sentences


def _abbreviation(text: str, start: int, period: int) -> bool:
    word = re.search(r"[\w.]*$", text[max(start, period - 12) : period]).group().lower()  # type: ignore[union-attr]
    return len(word.rsplit(".", 1)[-1]) == 1 or word in _ABBREVIATIONS


def _stripped(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def read_documents(path: Path) -> list[Document]:
    """The documents of one file (see the module docstring); a bad one is an error naming file, line, field."""
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise InputError(str(path), None, "a binary file, not text")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), None, f"not UTF-8 text (byte {exc.start})") from None
    if path.suffix.lower() == ".jsonl":
        return list(_jsonl_documents(path, content))
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise InputError(str(path), None, f"documents are .txt, .md or .jsonl files, not {path.suffix or 'this'}")
    if not content.strip():
        raise InputError(str(path), None, "an empty document")
    return [Document(path.stem, content, _markdown_title(content), None, str(path))]


def _jsonl_documents(path: Path, content: str):
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), number, f"not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(str(path), number, "not a JSON object")
        yield _row_document(row, str(path), number)


def _row_document(row: dict, source: str, number: int) -> Document:
    """A document from a JSONL row or a query's row: ``id``, ``text``, optional ``title`` and ``updated_at``."""
    for name in ("id", "text"):
        if not isinstance(row.get(name), (str, int)) or not str(row.get(name)).strip():
            raise InputError(source, number, "missing or empty", field=name)
    updated = row.get("updated_at")
    title = row.get("title")
    return Document(str(row["id"]), str(row["text"]), None if title is None else str(title),
                    None if updated is None else str(updated), f"{source}:{number}")  # fmt: skip


def sql_documents(url: str, query: str) -> list[Document]:
    """The documents a query's rows give (columns ``id``, ``text``, optional ``title``, ``updated_at``; the ``[sql]``
    extra); a bad row is an error naming the query's row and column."""
    from .store import redact
    from .store.external import source_rows

    shown, found = redact(url), list[Document]()
    with source_rows(url, query) as (columns, parts):
        for name in ("id", "text"):
            if name not in columns:
                raise InputError(shown, None, f"the query has no column {name!r} (it has {', '.join(columns)})")
        for part in parts:
            for row in part:
                found.append(_row_document(dict(zip(columns, row, strict=True)), shown, len(found) + 1))
    return found


def _markdown_title(content: str) -> str | None:
    match = re.search(r"(?m)^#\s+(.+)$", content)
    return match.group(1).strip() if match else None


def ingest_documents(
    store: Store,
    paths: list[str | Path],
    *,
    collection: str = "default",
    paragraph_items: bool = False,
    read: list[Document] | None = None,
    actor: str | None = None,
) -> DocumentIngest:
    """Read every file (directories: their .txt, .md and .jsonl files) before storing anything, then store the
    new and changed documents of ``collection`` with their paragraphs in one transaction; with
    ``paragraph_items`` each new paragraph also becomes an item (id ``doc#paragraph``). ``read``: documents read
    elsewhere (a database query: :func:`sql_documents`), taken with the files'."""
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            files += sorted(p for p in given.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES | {".jsonl"})
        elif given.is_file():
            files.append(given)
        else:
            raise InputError(str(given), None, "file not found")
    documents: dict[str, Document] = {}
    every = [*(read or []), *(document for path in files for document in read_documents(path))]
    for document in every:
        if document.id in documents and documents[document.id].text != document.text:
            raise InputError(document.source or "documents", None,
                             f"document {document.id!r} appears twice with different text", field="id")  # fmt: skip
        documents[document.id] = document
    result = DocumentIngest(documents=len(documents), files=[str(f) for f in files])
    known = store.document_hashes(list(documents))
    changed = [d for d in documents.values() if known.get(d.id) != (d.content_hash, collection)]  # moved: a change
    result.unchanged = len(documents) - len(changed)
    result.updated = sum(d.id in known for d in changed)
    result.added = len(changed) - result.updated
    split = [(d, d.paragraphs()) for d in changed]
    result.paragraphs = sum(len(paragraphs) for _, paragraphs in split)
    with store.transaction():
        versions = store.save_documents(split, collection)
        if paragraph_items:
            result.items = store.add_items(_paragraph_items(store, split, versions))[0]
    store.audit(actor_or_default(actor), "ingest-docs",
                detail=json.dumps({"files": result.files, "collection": collection, "added": result.added,
                                   "updated": result.updated, "unchanged": result.unchanged, "items": result.items},
                                  ensure_ascii=False))  # fmt: skip
    return result


def _paragraph_items(store: Store, split: list[tuple[Document, list[Paragraph]]], versions: dict[str, int]) -> list:
    """An item per paragraph not yet an item: its text, and where it comes from (the document, the version it was
    first seen in, its offsets there). A paragraph an edit elsewhere left as it was keeps its item and answers."""
    from .ingest import content_hash
    from .store import Item

    items = []
    for document, paragraphs in split:
        for p in paragraphs:
            fields = {"doc": document.id, "paragraph": p.id, "title": document.title,
                      "version": versions[document.id], "start": p.start, "end": p.end}  # fmt: skip
            items.append(Item(f"{document.id}#{p.id}", document.text[p.start : p.end], fields, "", document.source))
    known = store.content_hashes(item.id for item in items)
    return [replace(i, content_hash=content_hash(i.text, i.fields)) for i in items if i.id not in known]
