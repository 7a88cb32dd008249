import json

import pytest

from apps.customer_service.errors import SourceError
from apps.customer_service.sources import (
    Entry,
    Source,
    load_sources,
    read_document,
    read_qa_file,
    read_source,
)

from .conftest import SAMPLE_DIR


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


# --------------------------------------------------------------------------------- FAQ formats
def test_csv_faq_with_and_without_ids(tmp_path):
    path = write(
        tmp_path / "faq.csv",
        "question,answer,id,title,url,category,extra\r\n"
        'How do I reset my password?,"Click ""Forgot password"", then check your inbox.",pw-1,Passwords,'
        "https://x.example/pw,account,ignored\r\n"
        '"Multi-line\nquestion?",Answer two,,,,,\r\n',
    )
    first, second = read_qa_file(path)
    assert first.id == "pw-1" and first.kind == "faq"
    assert first.text == 'Click "Forgot password", then check your inbox.'
    assert (first.title, first.url, first.category, first.source) == (
        "Passwords", "https://x.example/pw", "account", "faq.csv",
    )  # fmt: skip
    # No id in the cell: the 0-based row number, prefixed by the file name; title falls back to the question.
    assert second.id == "faq.csv#1"
    assert second.question == "Multi-line\nquestion?" and second.title == second.question
    assert second.url is None and second.category is None


def test_json_and_jsonl_faq(tmp_path):
    rows = [{"question": " Q1 ", "answer": "A1", "id": 7}, {"question": "Q2", "answer": "A2", "title": None}]
    json_entries = read_qa_file(write(tmp_path / "faq.json", json.dumps({"entries": rows})))
    assert [e.id for e in json_entries] == ["7", "faq.json#1"]
    assert json_entries[0].question == "Q1"
    jsonl = "\n".join(json.dumps(r) for r in rows) + "\n\n"
    jsonl_entries = read_qa_file(write(tmp_path / "faq.jsonl", jsonl))
    assert [e.id for e in jsonl_entries] == ["7", "faq.jsonl#1"]


def test_dialogue_pairs_need_the_kind_named(tmp_path):
    path = write(
        tmp_path / "past.jsonl", json.dumps({"question": "Parcel late?", "answer": "It ships Monday."})
    )
    assert read_source(path)[0].kind == "faq"
    entry = read_source(f"dialogue:{path}")[0]
    assert entry.kind == "dialogue" and entry.id == "past.jsonl#0" and entry.text == "It ships Monday."
    assert read_source(Source(path, "dialogue"))[0] == entry


def test_markdown_document_with_front_matter(tmp_path):
    path = write(
        tmp_path / "returns.md",
        "---\ntitle: Returns\nurl: https://x.example/returns\ncategory: returns\n---\n"
        "# Returns\n\nIntro.\n\n## Refund timeline\n\nRefunds take 5 days.\n",
    )
    entries = read_document(path)
    assert [e.id for e in entries] == ["returns.md#returns-0", "returns.md#refund-timeline-0"]
    refund = entries[1]
    assert refund.kind == "doc" and refund.question == ""
    assert refund.title == "Returns › Refund timeline"
    assert refund.url == "https://x.example/returns#refund-timeline"
    assert refund.category == "returns"
    # The content field carries the heading path, so a passage is found by its section name too.
    assert refund.content_field() == "Returns › Refund timeline\nRefunds take 5 days."
    assert refund.question_field() == "Returns › Refund timeline"


def test_document_title_defaults_to_file_name(tmp_path):
    entries = read_document(write(tmp_path / "store-hours.txt", "Open 9 to 5.\n\nClosed Sundays."))
    assert [e.id for e in entries] == ["store-hours.txt#top-0"]
    assert entries[0].title == "Store hours"


def test_folder_of_documents_uses_folder_relative_ids(tmp_path):
    folder = tmp_path / "policies"
    (folder / "sub").mkdir(parents=True)
    write(folder / "a.md", "# A\n\ntext a")
    write(folder / "sub" / "b.txt", "text b")
    write(folder / "notes.csv", "not,a,doc")
    write(folder / ".hidden.md", "# hidden")
    ids = [e.id for e in read_source(folder)]
    assert ids == ["policies/a.md#a-0", "policies/sub/b.txt#top-0"]


def test_sample_data_loads():
    entries = load_sources([SAMPLE_DIR / "faq.csv", SAMPLE_DIR / "policies"])
    faqs = [e for e in entries if e.kind == "faq"]
    docs = {e.source for e in entries if e.kind == "doc"}
    assert len(faqs) >= 40 and all(e.url and e.category for e in faqs)
    assert docs == {f"policies/{name}.md" for name in ("privacy", "returns", "shipping", "warranty")}


# ---------------------------------------------------------------------------------- entries
def test_entry_hash_covers_embedded_text_only():
    entry = Entry("a", "faq", "Q?", "A.", "Title")
    assert (
        Entry("a", "faq", "Q?", "A.", "Title", url="https://changed.example").content_hash
        == entry.content_hash
    )
    assert Entry("a", "faq", "Q?", "A. more", "Title").content_hash != entry.content_hash
    assert Entry.from_dict(entry.to_dict()) == entry
    tampered = {**entry.to_dict(), "text": "changed"}
    with pytest.raises(ValueError, match="content_hash"):
        Entry.from_dict(tampered)
    with pytest.raises(ValueError, match="kind"):
        Entry("a", "note", "Q", "A", "T")


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "name,content,match",
    [
        ("faq.csv", "question,title\nQ,T\n", r"faq.csv: line 1, field 'answer': missing column"),
        (
            "faq.csv",
            "question,answer\nQ1,A1\n  ,A2\n",
            r"faq.csv: row 1 \(line 3\), field 'question': is empty",
        ),
        ("faq.csv", "question,answer\nQ1,A1,extra\n", r"row 0 \(line 2\): 3 fields but the header names 2"),
        ("faq.csv", 'question,answer\nQ1,"unterminated\n', r"faq.csv: line \d+: malformed CSV"),
        ("faq.csv", "", r"empty file"),
        ("faq.csv", "question,answer\n", r"holds no records"),
        (
            "faq.csv",
            "id,question,answer\nx,Q1,A1\nx,Q2,A2\n",
            r"row 1 \(line 3\), field 'id': duplicate id 'x'",
        ),
        ("faq.json", '[{"question": "Q", "answer": "A"},', r"faq.json: line 1: not valid JSON"),
        ("faq.json", '{"items": []}', r"expected a JSON list"),
        ("faq.json", '[{"question": "Q"}]', r"row 0, field 'answer': is missing"),
        (
            "faq.json",
            '[{"question": ["Q"], "answer": "A"}]',
            r"row 0, field 'question': expected text, got list",
        ),
        ("faq.json", '["just a string"]', r"row 0: expected a JSON object"),
        ("faq.jsonl", '{"question": "Q", "answer": "A"}\n{broken\n', r"row 1 \(line 2\): not valid JSON"),
        ("faq.jsonl", '{"question": "Q", "answer": ""}\n', r"row 0 \(line 1\), field 'answer': is empty"),
        ("faq.xlsx", "whatever", r"unknown file type .xlsx"),
        ("doc.md", "---\ntitle: [unclosed\n---\ntext", r"doc.md: line 1, field 'front matter'"),
    ],
)
def test_bad_files_name_file_row_and_field(tmp_path, name, content, match):
    path = write(tmp_path / name, content)
    with pytest.raises(SourceError, match=match):
        read_source(path)


def test_non_utf8_file_names_the_line(tmp_path):
    path = write(tmp_path / "faq.csv", "question,answer\nCafé opening hours?,9 to 5\n", encoding="latin-1")
    with pytest.raises(SourceError, match=r"faq.csv: line 2: not valid UTF-8") as err:
        read_source(path)
    assert err.value.line == 2 and err.value.path == str(path)


def test_utf8_bom_is_accepted(tmp_path):
    path = write(tmp_path / "faq.csv", "\ufeffquestion,answer\nQ,A\n")
    assert read_source(path)[0].question == "Q"


def test_missing_source_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv does not exist"):
        load_sources([tmp_path / "nope.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no documents"):
        load_sources([tmp_path / "empty"])
    with pytest.raises(ValueError, match="no knowledge-base sources"):
        load_sources([])


def test_ids_must_be_unique_across_sources(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a" / "faq.csv", "question,answer\nQ,A\n")
    second = write(tmp_path / "b" / "faq.csv", "question,answer\nQ2,A2\n")
    with pytest.raises(SourceError, match=r"entry id 'faq.csv#0' is also produced by .*a/faq.csv"):
        load_sources([first, second])
