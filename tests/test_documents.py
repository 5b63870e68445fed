"""Documents (issue 19): ``ingest-docs`` splits text, Markdown and JSONL documents into paragraphs with offsets
into the original and Chinese and English sentences; paragraph ids survive edits elsewhere; a changed document
becomes a new version while the old one stays; bad input (empty, binary, a row without text) is one line
naming the file, line and field, with nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelloop import InputError, Project
from labelloop.cli import app
from labelloop.documents import split_paragraphs, split_sentences

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
ZH = "北京的故宫很大。门票六十元！周一闭馆吗？是的，周一闭馆。"
EN = 'The museum opens at 9 a.m. on weekdays. Tickets cost $10! Is it closed on Mondays? "Yes," she said.'


def test_sentences_and_paragraphs_keep_offsets_into_the_original():
    text = f"# 导览\n\n{ZH}\n\n  \n{EN}\n"
    paragraphs = split_paragraphs(text)
    assert [text[p.start : p.end] for p in paragraphs] == ["# 导览", ZH, EN]
    assert [text[a:b] for a, b in paragraphs[1].sentences] == ["北京的故宫很大。", "门票六十元！", "周一闭馆吗？",
                                                               "是的，周一闭馆。"]  # fmt: skip
    assert [text[a:b] for a, b in paragraphs[2].sentences] == [
        "The museum opens at 9 a.m. on weekdays.", "Tickets cost $10!", "Is it closed on Mondays?", '"Yes," she said.']
    assert split_sentences("他说：“好。”然后走了。") == [(0, 7), (7, 12)], "a closing quote stays with its sentence"
    assert len(split_sentences("Dr. Li met Mr. Wang at 3 p.m. yesterday. Then they left.")) == 2


def test_ingest_docs_updates_by_content_and_keeps_old_versions(tmp_path):
    project = Project.init(tmp_path / "p", "sentiment")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text(f"# Guide\n\n{ZH}\n\n{EN}\n", encoding="utf-8")
    (docs / "faq.jsonl").write_text(json.dumps({"id": "faq-1", "title": "FAQ", "text": f"{EN}\n\nSecond answer.",
                                                "updated_at": "2026-11-01"}) + "\n", encoding="utf-8")  # fmt: skip
    first = project.ingest_docs([docs])
    assert (first.documents, first.added, first.updated, first.paragraphs) == (2, 2, 0, 5)
    guide = project.store.document("guide")
    assert guide["title"] == "Guide" and guide["version"] == 1
    ids = [p["id"] for p in project.store.paragraphs("guide", 1)]
    again = project.ingest_docs([docs])
    assert (again.added, again.updated, again.unchanged, again.paragraphs) == (0, 0, 2, 0)
    (docs / "guide.md").write_text(f"# Guide (new)\n\n{ZH}\n\n{EN}\n", encoding="utf-8")
    changed = project.ingest_docs([docs / "guide.md"])
    assert (changed.updated, changed.paragraphs) == (1, 3)
    current = project.store.document("guide")
    assert current["version"] == 2 and current["title"] == "Guide (new)"
    new_ids = [p["id"] for p in project.store.paragraphs("guide", 2)]
    assert new_ids[1:] == ids[1:] and new_ids[0] != ids[0], "unchanged paragraphs keep their ids"
    old = project.store.document("guide", 1)
    start, end = project.store.paragraphs("guide", 1)[1]["start"], project.store.paragraphs("guide", 1)[1]["end"]
    assert old["text"][start:end] == ZH, "the old version stays, offsets and all"
    assert project.store.count_documents() == (2, 5)
    project.close()


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", b"  \n\n ", "empty.txt: an empty document"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "image.txt: a binary file, not text"),
    ("latin.md", "café".encode("latin-1"), "latin.md: not UTF-8 text (byte 3)"),
    ("rows.jsonl", b'{"id": "a", "text": "ok"}\n{"id": "b"}\n', "rows.jsonl:2: field 'text': missing or empty"),
    ("table.csv", b"id,text\n", "documents are .txt, .md or .jsonl files, not .csv"),
])  # fmt: skip
def test_bad_documents_fail_with_one_line_and_store_nothing(tmp_path, name, content, message):
    project = Project.init(tmp_path / "p", "sentiment")
    good = tmp_path / "good.txt"
    good.write_text(EN, encoding="utf-8")
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        project.ingest_docs([good, bad])
    assert project.store.count_documents() == (0, 0)
    result = CliRunner().invoke(app, ["ingest-docs", str(good), str(bad), "--project", str(project.root)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    project.close()


@pytest.mark.skipif(not (DATA / "crosswoz").is_dir(), reason="shared datasets not found")
def test_crosswoz_turns_as_one_chinese_document(tmp_path):
    turns = [json.loads(line)["text"] for line in (DATA / "crosswoz" / "val.jsonl").open(encoding="utf-8")][:200]
    text = "\n\n".join(turns)
    (tmp_path / "turns.txt").write_text(text, encoding="utf-8")
    project = Project.init(tmp_path / "p", "topic")
    result = CliRunner().invoke(app, ["ingest-docs", str(tmp_path / "turns.txt"), "--project", str(project.root)])
    assert result.exit_code == 0 and "1 added" in result.output, result.output
    stored = project.store.document("turns")["text"]
    paragraphs = project.store.paragraphs("turns", 1)
    assert len(paragraphs) == len([t for t in turns if t.strip()])
    for paragraph in paragraphs:
        for start, end in json.loads(paragraph["sentences"]):
            assert paragraph["start"] <= start < end <= paragraph["end"] and stored[start:end].strip()
    project.close()


def test_documents_from_a_database_query(tmp_path):
    """``ingest-docs --from-sql URL --query`` takes a table's rows as documents, and a row without text fails."""
    import sqlite3

    pytest.importorskip("sqlalchemy")
    database = tmp_path / "kb.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE articles (id TEXT, text TEXT, title TEXT, updated_at TEXT)")
        db.executemany("INSERT INTO articles VALUES (?, ?, ?, ?)", [
            ("a1", "第一段。\n\n第二段。", "指南", "2026-11-01"), ("a2", "One paragraph.", None, None)])  # fmt: skip
    project = Project.init(tmp_path / "p")
    url = f"sqlite:///{database}"
    result = CliRunner().invoke(app, ["ingest-docs", "--from-sql", url, "--query", "SELECT * FROM articles",
                                      "--project", str(tmp_path / "p")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert project.store.count_documents() == (2, 3)
    assert project.store.document("a1")["title"] == "指南"
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO articles VALUES ('a3', '', NULL, NULL)")
    with pytest.raises(InputError, match="text"):
        project.ingest_docs([], from_sql=(url, "SELECT * FROM articles"))
    assert project.store.count_documents() == (2, 3)
    project.close()


def test_moving_a_document_to_another_collection_is_a_new_version_there(tmp_path):
    """An unchanged text ingested into another collection moves there (as a new version; the old one stays)."""
    project = Project.init(tmp_path / "p")
    (tmp_path / "faq.md").write_text("Opening hours are nine to five.", encoding="utf-8")
    first = project.ingest_docs([tmp_path / "faq.md"])
    moved = project.ingest_docs([tmp_path / "faq.md"], collection="support")
    again = project.ingest_docs([tmp_path / "faq.md"], collection="support")
    assert (first.added, moved.updated, again.unchanged) == (1, 1, 1)
    assert (project.store.document("faq")["collection"], project.store.document("faq")["version"]) == ("support", 2)
    assert project.store.current_paragraphs("default") == []
    assert [row[0] for row in project.store.current_paragraphs("support")] == ["faq"]
    result = CliRunner().invoke(app, ["ingest-docs", "--project", str(tmp_path / "p")])
    assert result.exit_code != 0 and "give files" in result.output
    project.close()
