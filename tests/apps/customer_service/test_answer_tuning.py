"""Past-dialogue pairs, answer-model fine-tuning, before/after answer quality, and their commands."""

import json

import pytest
from typer.testing import CliRunner

from apps.customer_service.answer_tuning import (
    HELDOUT_FILE,
    QAPair,
    evaluate_answer_model,
    finetune_answers,
    read_dialogue_pairs,
    split_heldout,
)
from apps.customer_service.errors import SourceError
from core.cli import app

from .conftest import SAMPLE_DIR

runner = CliRunner()

PAIRS = [
    ("How long does shipping take?", "Standard shipping takes 3 to 5 working days."),
    ("Can I return a sale item?", "Yes, sale items can be returned within 30 days."),
    ("Do you ship to Canada?", "Yes, we ship to Canada; duties are paid on delivery."),
    ("How do I reset my password?", "Click Forgot password on the sign-in page and follow the email."),
    ("Where is my refund?", "Refunds reach your card 5 to 10 days after we receive the return."),
    ("Can I change my address?", "You can change the address until the order ships, under Orders."),
]


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "past.jsonl"
    path.write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PAIRS), encoding="utf-8"
    )
    return path


def test_read_pairs_from_the_faq_csv_and_jsonl(pairs_file):
    faq = read_dialogue_pairs(SAMPLE_DIR / "faq.csv")
    assert len(faq) >= 40 and faq[0].id == "order-01" and faq[0].question == "How do I track my order?"
    pairs = read_dialogue_pairs(pairs_file)
    assert [(p.question, p.answer) for p in pairs] == PAIRS
    assert pairs[0].id == "past.jsonl#0"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "Q?"}\n', "row 0 (line 1), field 'answer': is missing"),
        (
            '{"question": "Q?", "answer": "A"}\n{"question": " ", "answer": "A"}\n',
            "row 1 (line 2), field 'question'",
        ),
        ('{"question": "Q?", "answer": "A"}\nnot json\n', "line 2"),
    ],
)
def test_bad_pairs_name_row_and_field(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError, match="bad.jsonl") as err:
        read_dialogue_pairs(path)
    assert message in str(err.value)


def test_split_heldout_is_seeded_disjoint_and_checked():
    pairs = [QAPair(f"q{i}", f"a{i}", str(i)) for i in range(20)]
    train, held = split_heldout(pairs, 0.2, seed=1)
    assert len(held) == 4 and len(train) == 16 and not {p.id for p in train} & {p.id for p in held}
    assert split_heldout(pairs, 0.2, seed=1) == (train, held)
    assert split_heldout(pairs, 0.2, seed=2)[1] != held
    assert split_heldout(pairs, 0.0) == (pairs, [])
    with pytest.raises(ValueError, match="too few"):
        split_heldout(pairs[:1], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        split_heldout(pairs, 1.0)


def test_finetune_and_evaluate_with_a_tiny_lm(tmp_path, pairs_file, tiny_causal_lm_dir):
    out = tmp_path / "adapter"
    report = finetune_answers(
        pairs_file, out, str(tiny_causal_lm_dir), heldout_fraction=0.2, epochs=2, show_progress_bar=False
    )
    assert report["pairs"] == 6 and report["heldout"] == 1 and report["epochs_run"] == 2
    assert {"adapter_model.safetensors", "adapter_config.json", "aigc_adapter.json", HELDOUT_FILE} <= {
        p.name for p in out.iterdir()
    }
    held = read_dialogue_pairs(out / HELDOUT_FILE)
    assert len(held) == 1 and (held[0].question, held[0].answer) in PAIRS
    manifest = json.loads((out / "aigc_adapter.json").read_text())
    assert "customer-support assistant" in manifest["system_prompt"]

    result = evaluate_answer_model(out / HELDOUT_FILE, adapter=out, max_new_tokens=4)
    assert result["pairs"] == 1
    for side in ("before", "after"):
        assert 0 <= result[side]["rouge_l"] <= 1 and 0 <= result[side]["bleu"] <= 100
        assert result[side]["samples"][0]["reference"] == held[0].answer
    assert result["delta"]["rouge_l"] == pytest.approx(
        result["after"]["rouge_l"] - result["before"]["rouge_l"]
    )


def test_cli_finetune_and_eval_answers(tmp_path, pairs_file, tiny_causal_lm_dir):
    out = tmp_path / "adapter"
    args = ["support", "finetune", "--pairs", str(pairs_file), "--model", str(tiny_causal_lm_dir)]
    result = runner.invoke(
        app,
        [*args, "--out", str(out), "--heldout", "0.2", "--set", "epochs=1", "--set", "lora.r=4", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["heldout"] == 1 and report["heldout_file"].endswith(HELDOUT_FILE)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4

    result = runner.invoke(
        app, ["support", "eval-answers", "--adapter", str(out), "--max-new-tokens", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["pairs"] == 1 and set(scores["delta"]) == {"rouge_l", "bleu"}


def test_cli_finetune_bad_input_exits_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("question,reply\nQ?,A\n", encoding="utf-8")
    result = runner.invoke(app, ["support", "finetune", "--pairs", str(bad), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "field 'answer': missing column(s) ['answer']" in " ".join(result.output.split())
    assert not (tmp_path / "a").exists()
    missing = runner.invoke(app, ["support", "eval-answers", "--adapter", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "run `finetune` first" in " ".join(missing.output.split())


def test_real_smollm_answers_score_above_zero():
    """The packaged SmolLM2 answers real FAQ questions; its answers share words with the references."""
    pairs = read_dialogue_pairs(SAMPLE_DIR / "faq.csv")[:2]
    result = evaluate_answer_model(pairs, max_new_tokens=24)
    assert result["after"] is None and result["pairs"] == 2
    assert result["before"]["rouge_l"] > 0.02
    assert all(s["answer"] for s in result["before"]["samples"])
