"""Intent data loading, training, evaluation and the train-intents / eval-intents commands."""

import json

import pytest
from typer.testing import CliRunner

from apps.customer_service.errors import SourceError
from apps.customer_service.intents import (
    VALIDATION_FILE,
    IntentModel,
    evaluate_intents,
    load_banking77,
    read_intents_csv,
    train_intents,
)
from core.cli import app
from tests.conftest import require_shared_data

from .conftest import SAMPLE_DIR

runner = CliRunner()
SAMPLE = SAMPLE_DIR / "intents.csv"


def test_read_sample_intents():
    data = read_intents_csv(SAMPLE)
    assert len(data.texts) == 150
    assert data.label_set("label") == sorted(set(data.labels["label"]))
    assert len(data.label_set("label")) == 10
    assert all(t == t.strip() and t for t in data.texts)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("utterance,label\nhi,greet\n", "line 1, field 'text': missing column(s) ['text']"),
        ("text,label\nhi,greet\n  ,bye\n", "row 1 (line 3), field 'text': is empty"),
        ("text,label\nhi,greet\nbye,\n", "row 1 (line 3), field 'label': is empty"),
        ("text,label\nhi,greet,extra\n", "row 0 (line 2): 3 fields but the header names 2"),
        ("text,label\nhi,greet\nhello,greet\n", "1 distinct label(s) ['greet']"),
        ("text,label\n", "holds no labelled rows"),
        ('text,label\n"unclosed,greet\n', "malformed CSV"),
    ],
)
def test_read_intents_csv_names_row_and_field(tmp_path, content, message):
    path = tmp_path / "intents.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError, match="intents.csv") as err:
        read_intents_csv(path)
    assert message in str(err.value)


def test_read_intents_csv_rejects_non_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncafé,order\n".encode("latin-1"))
    with pytest.raises(SourceError, match="not valid UTF-8"):
        read_intents_csv(path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_intents_csv(tmp_path / "nope.csv")


def _fake_banking(tmp_path, label="card_arrival"):
    root = tmp_path / "banking"
    root.mkdir()
    (root / "categories.json").write_text(json.dumps(["card_arrival", "lost_or_stolen_card"]))
    # The upstream quirks: CRLF line endings, a quoted field with a comma and an embedded newline.
    rows = 'text,category\r\n"Where is my card, it has not come?",card_arrival\r\n'
    rows += f'"I lost my card\nyesterday",lost_or_stolen_card\r\nmy card never came,{label}\r\n'
    (root / "train.csv").write_bytes(rows.encode())
    return root


def test_load_banking77_handles_crlf_and_embedded_newlines(tmp_path):
    data = load_banking77(_fake_banking(tmp_path), "train")
    assert data.texts == [
        "Where is my card, it has not come?",
        "I lost my card\nyesterday",
        "my card never came",
    ]
    assert data.labels["label"] == ["card_arrival", "lost_or_stolen_card", "card_arrival"]


def test_load_banking77_rejects_unknown_labels_and_splits(tmp_path):
    root = _fake_banking(tmp_path, label="card_arival")
    with pytest.raises(
        SourceError, match=r"row 2, field 'category': label 'card_arival' is not in categories"
    ):
        load_banking77(root, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_banking77(root, "validation")
    with pytest.raises(FileNotFoundError, match="categories.json"):
        load_banking77(tmp_path, "train")


def test_load_real_banking77_counts():
    root = require_shared_data("support", "banking77")
    train, test = load_banking77(root, "train"), load_banking77(root, "test")
    assert (len(train.texts), len(test.texts)) == (10_003, 3_080)
    assert len(train.label_set("label")) == len(test.label_set("label")) == 77
    # 10 train rows hold a newline inside quotes (physical lines: 10,017); parsed, none is split.
    assert all(t.strip() == t for t in train.texts)


def test_train_and_evaluate_with_a_tiny_encoder(tmp_path, tiny_encoder_dir):
    out = tmp_path / "intents"
    report = train_intents(
        SAMPLE, out, str(tiny_encoder_dir), epochs=1, batch_size=16, show_progress_bar=False
    )
    assert report["labels"] == read_intents_csv(SAMPLE).label_set("label")
    assert report["train_size"] + report["val_size"] == 150 and report["val_size"] == 30
    assert report["temperature"] > 0
    assert {"config.json", "heads.safetensors", "adapter_model.safetensors", VALIDATION_FILE} <= {
        p.name for p in out.iterdir()
    }
    # The held-out file is the validation split: stratified, 3 per intent, disjoint from training.
    held = read_intents_csv(out / VALIDATION_FILE)
    assert len(held.texts) == 30 and all(held.labels["label"].count(lab) == 3 for lab in report["labels"])

    model = IntentModel.load(out)
    predictions = model.predict(["where is my package", "I want my money back"])
    assert all(p.label in report["labels"] and 0 < p.confidence <= 1 for p in predictions)
    assert model.classifier.temperatures["label"] == pytest.approx(report["temperature"])

    result = evaluate_intents(out)  # default: the held-out validation split
    assert result["examples"] == 30 and result["data"].endswith(VALIDATION_FILE)
    assert 0 <= result["accuracy"] <= 1 and 0 <= result["macro_f1"] <= 1 and result["unknown_labels"] == []
    other = tmp_path / "other.csv"
    other.write_text("text,label\nwhere is my parcel,track_order\nhello there,say_hello\n", encoding="utf-8")
    scored = evaluate_intents(out, other)
    assert scored["examples"] == 2 and scored["unknown_labels"] == ["say_hello"]
    assert scored["accuracy"] <= 0.5  # the unknown label can never be predicted


def test_cli_train_and_eval_intents(tmp_path, tiny_encoder_dir):
    out = tmp_path / "m"
    args = ["support", "train-intents", "--model", str(tiny_encoder_dir), "--out", str(out)]
    result = runner.invoke(app, [*args, "--set", "epochs=1", "--set", "show_progress_bar=false", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["epochs_run"] == 1 and len(report["labels"]) == 10 and report["val_size"] == 30

    result = runner.invoke(app, ["support", "eval-intents", "--model-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"accuracy", "macro_f1", "examples"} <= set(metrics) and metrics["examples"] == 30
    table = runner.invoke(app, ["support", "eval-intents", "--model-dir", str(out), "--data", str(SAMPLE)])
    assert table.exit_code == 0 and "macro_f1" in table.output


def test_cli_bad_input_exits_2_without_traceback(tmp_path, tiny_encoder_dir):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhi,\n", encoding="utf-8")
    result = runner.invoke(
        app, ["support", "train-intents", "--data", str(bad), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert "row 0 (line 2), field 'label': is empty" in result.output
    assert not (tmp_path / "m").exists()
    unknown = runner.invoke(
        app, ["support", "train-intents", "--set", "epochz=1", "--out", str(tmp_path / "m")]
    )
    assert unknown.exit_code == 2 and "epochz" in unknown.output
    missing = runner.invoke(app, ["support", "eval-intents", "--model-dir", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "none" in missing.output


@pytest.mark.slow
def test_real_minilm_learns_the_sample_intents(tmp_path):
    """End to end with the packaged MiniLM: LoRA fine-tune on the shipped sample, then score held-out."""
    report = train_intents(SAMPLE, tmp_path / "m", epochs=6, batch_size=16, show_progress_bar=False)
    result = evaluate_intents(tmp_path / "m")
    assert result["accuracy"] >= 0.8, (result, report["history"])
    model = IntentModel.load(tmp_path / "m")
    assert model.predict(["my parcel has not arrived, where is it?"])[0].label == "track_order"
