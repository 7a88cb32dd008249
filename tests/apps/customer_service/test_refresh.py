"""The guarded refresh with real (tiny) models: promote, refuse a worse candidate, roll back, kills, CLI.

The guard sequence trains the tiny random BERT three times on the two-intent set of
``refresh_fixtures`` (a few seconds each on quiet cores): the correct labels, the labels swapped (a
candidate that is really worse on the frozen held-out set), and the correct labels again (the same
scores: equal passes). The adapter test trains the tiny random Llama for one epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from apps.customer_service.config import BotConfig, RefreshConfig
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.refresh import refresh
from apps.customer_service.served_models import (
    answer_adapter_path,
    intent_model_path,
    list_versions,
    support_registry,
)
from apps.customer_service.storage import SupportStore
from apps.customer_service.training_data import normalize_question
from core.artifact_registry import list_artifacts
from core.auth import audit_events
from core.failpoints import EXIT_CODE
from tests.cli_run import run_aigc

from .bot_fixtures import calibrated_kb_dir  # noqa: F401 - fixture
from .refresh_fixtures import FAST_INTENTS, add_correction, refresh_yaml, write_intents, write_pairs

ROOT = Path(__file__).resolve().parents[3]


def fast_config(intents: Path, encoder: Path, **values) -> RefreshConfig:
    return RefreshConfig(
        intents_data=str(intents),
        encoder=str(encoder),
        heldout_fraction=0.25,
        min_pairs=3,
        max_new_tokens=4,
        intent_training={**FAST_INTENTS, "show_progress_bar": False},
        answer_training={"epochs": 1, "show_progress_bar": False},
        **values,
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, tiny_encoder_dir) -> dict:
    """Three refreshes in one data directory: good (promoted), mislabelled (refused), good again."""
    root = tmp_path_factory.mktemp("guarded")
    data_dir = root / "data"
    good, swapped = write_intents(root / "good.csv"), write_intents(root / "swapped.csv", swap=True)
    results = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIGC_DATA_DIR", str(data_dir))
        mp.delenv("AIGC_DB_URL", raising=False)
        for intents in (good, swapped, good):
            result = refresh(
                config=fast_config(intents, tiny_encoder_dir), bot_config=BotConfig(), skip_adapter=True
            )
            results.append(result)
    return {"data_dir": data_dir, "results": results, "registry": data_dir / "support" / "models"}


def test_the_guard_promotes_a_first_version_refuses_a_worse_one_and_promotes_an_equal_one(guarded):
    first, worse, equal = guarded["results"]
    assert (first.version, worse.version, equal.version) == ("v0001", "v0002", "v0003")

    assert first.promoted and first.previous is None and first.scores["old"] == {}  # nothing served before
    assert first.scores["new"]["intent_accuracy"] >= 0.75, (
        first.scores
    )  # the tiny model learned the two intents

    assert not worse.promoted and worse.active == "v0001" and worse.previous == "v0001"
    assert worse.scores["old"] == first.scores["new"]  # the served version, on the same held-out rows
    assert worse.scores["new"]["intent_accuracy"] <= 0.25, worse.scores  # trained on swapped labels
    assert set(worse.decision["worse"]) == {"intent_accuracy", "intent_macro_f1"}

    assert equal.promoted and equal.previous == "v0001" and equal.active == "v0003"
    assert (
        equal.scores["new"] == equal.scores["old"] == first.scores["new"]
    )  # same data and seed: equal passes

    registry = support_registry(guarded["registry"])
    assert registry.active_name() == "v0003"
    assert [h["version"] for h in registry.history()] == ["v0001", "v0003"]
    rows = {r["version"]: r for r in list_versions(registry)}
    assert [rows[v]["promoted"] for v in ("v0001", "v0002", "v0003")] == [True, False, True]
    assert rows["v0002"]["scores"]["new"]["intent_accuracy"] == worse.scores["new"]["intent_accuracy"]
    assert rows["v0002"]["components"] == {"intents": "trained", "adapter": "absent"}
    # Both scores and the decision are in the database too (core_artifacts).
    db = f"sqlite:///{guarded['data_dir'] / 'aigc.db'}"
    stored = {Path(a.path).name: a.meta for a in list_artifacts("support-model-version", engine=db)}
    assert stored["v0002"]["promoted"] is False and stored["v0002"]["scores"] == worse.scores


def test_the_heldout_set_is_frozen_at_the_first_refresh_and_never_trained_on(guarded):
    registry = support_registry(guarded["registry"])
    records = [v.record for v in registry.versions()]
    assert len({json.dumps(r["heldout"], sort_keys=True) for r in records}) == 1  # the same rows every time
    assert guarded["results"][0].heldout["frozen_now"] == ["intents"]
    assert guarded["results"][1].heldout["frozen_now"] == []
    with (guarded["registry"] / "heldout" / "intents.csv").open(encoding="utf-8") as fh:
        held = {normalize_question(row["text"]) for row in csv.DictReader(fh)}
    assert len(held) == 8
    for version in registry.versions():
        with (version.path / "data" / "intents.csv").open(encoding="utf-8") as fh:
            trained = {normalize_question(row["text"]) for row in csv.DictReader(fh)}
        assert len(trained) == 24 and not trained & held
        assert version.record["data"]["excluded_heldout"] == 8
        assert not (version.path / "intents" / "checkpoint").exists()  # no optimizer state in a version


def test_versions_rollback_and_the_bot_loading_the_active_version(
    guarded, tmp_path, monkeypatch, tiny_embedder, wide_output
):
    data_dir = tmp_path / "copy"
    shutil.copytree(guarded["data_dir"], data_dir)
    monkeypatch.setenv("AIGC_DATA_DIR", str(data_dir))
    registry = support_registry()
    assert intent_model_path() == registry.versions_dir / "v0003" / "intents"

    listed = run_aigc("support", "versions", "--json")
    assert listed.code == 0, listed.stderr
    assert [(r["version"], r["active"], r["promoted"]) for r in json.loads(listed.stdout)] == [
        ("v0001", False, True), ("v0002", False, False), ("v0003", True, True)
    ]  # fmt: skip
    table = run_aigc("support", "versions")
    assert table.code == 0 and "v0002" in table.stdout

    back = run_aigc("support", "refresh", "--to", "v1", "--json")
    assert back.code == 0, back.stderr
    switch = json.loads(back.stdout)
    assert (switch["version"], switch["previous"], switch["action"]) == ("v0001", "v0003", "rollback")
    assert (
        registry.active_name() == "v0001"
        and intent_model_path() == registry.versions_dir / "v0001" / "intents"
    )
    [event] = audit_events(action="model_rollback")
    assert (
        event["target"] == "v0001"
        and event["actor"].startswith("cli")
        and event["details"]["previous"] == "v0003"
    )

    # The bot tags intents with the active version's model (no intent_model configured).
    faq = tmp_path / "faq.csv"
    faq.write_text("id,question,answer\nf1,Where is my parcel?,Use the tracking link.\n", encoding="utf-8")
    bot_kb = KnowledgeBase.build([faq], tmp_path / "kb", embedder=tiny_embedder)
    from apps.customer_service.bot import SupportBot

    bot = SupportBot(bot_kb, BotConfig(), embedder=tiny_embedder)
    label, confidence = bot.predict_intent("where is my parcel")
    assert label in {"track_order", "refund_status"} and 0 < confidence <= 1
    assert sorted(bot.intent_model.labels()) == ["refund_status", "track_order"]

    again = run_aigc("support", "refresh", "--to", "v0001")
    assert again.code == 2 and again.error_lines == ["error: version v0001 is the active version already"]
    forward = run_aigc("support", "refresh", "--to", "2")  # a refused candidate can be forced, audited
    assert forward.code == 0 and registry.active_name() == "v0002"
    assert audit_events(action="model_promote")[0]["target"] == "v0002"


def test_an_adapter_refresh_with_a_tiny_lm(tmp_path, tiny_encoder_dir, tiny_causal_lm_dir):
    store = SupportStore()
    add_correction(store, "Can I pay with PayPal?", "Yes, PayPal is accepted at checkout.")
    config = fast_config(
        write_intents(tmp_path / "intents.csv"),
        tiny_encoder_dir,
        pairs_data=str(write_pairs(tmp_path / "pairs.jsonl")),
        answer_model=str(tiny_causal_lm_dir),
    )
    result = refresh(config=config, bot_config=BotConfig(), skip_intents=True)
    assert result.promoted and result.components["adapter"]["status"] == "trained"
    assert result.components["intents"]["status"] == "absent"
    assert result.data["sources"]["corrections"] == 1 and result.heldout == {
        "intents": 8,
        "pairs": 2,
        "frozen_now": ["intents", "pairs"],
    }
    for side in ("old", "new"):  # the base model before, the adapter after, on the same 2 held-out pairs
        assert (
            0 <= result.scores[side]["answer_rouge_l"] <= 1 and 0 <= result.scores[side]["answer_bleu"] <= 1
        )
    assert any("no GGUF export" in note for note in result.notes)  # the tiny Llama has no GGUF base
    assert "no knowledge base: the answer adapter was scored closed-book only" in result.notes
    assert "grounded_answer_share" not in result.scores["new"]
    adapter = support_registry().active_path("adapter")
    assert (adapter / "adapter_model.safetensors").is_file() and not (adapter / "checkpoint").exists()
    assert answer_adapter_path(None, str(tiny_causal_lm_dir)) == str(adapter)
    assert answer_adapter_path(None, "smollm2-135m-instruct") is None  # trained on another base
    assert answer_adapter_path("/my/adapter", str(tiny_causal_lm_dir)) == "/my/adapter"  # config wins

    # The next refresh retrains the intents only and carries the adapter (and its scores) over.
    second = refresh(config=config, bot_config=BotConfig(), skip_adapter=True)
    assert second.components["adapter"] == {"status": "carried", "from": "v0001"}
    assert (
        second.promoted and second.scores["new"]["answer_rouge_l"] == result.scores["new"]["answer_rouge_l"]
    )
    assert (
        support_registry().active_path("adapter").joinpath("adapter_model.safetensors").read_bytes()
        == (adapter / "adapter_model.safetensors").read_bytes()
    )


def test_with_a_kb_the_adapter_is_also_scored_as_the_bot_uses_it(
    tmp_path,
    tiny_encoder_dir,
    tiny_causal_lm_dir,
    calibrated_kb_dir,  # noqa: F811
):
    """Both the served base model and the candidate answer the held-out questions from the KB's
    passages behind the grounding verifier; the guard compares those scores too, kept with the version."""
    config = fast_config(
        write_intents(tmp_path / "intents.csv"),
        tiny_encoder_dir,
        pairs_data=str(write_pairs(tmp_path / "pairs.jsonl")),
        answer_model=str(tiny_causal_lm_dir),
    )
    result = refresh(config=config, bot_config=BotConfig(), kb_dir=calibrated_kb_dir, skip_intents=True)
    assert result.components["adapter"]["status"] == "trained" and result.heldout["pairs"] >= 2
    for side in ("old", "new"):
        scores = result.scores[side]
        assert 0 <= scores["grounded_answer_share"] <= 1 and 0 <= scores["grounded_rouge_l"] <= 1, scores
        if scores["grounded_answer_share"] == 0:  # nothing shown: nothing to overlap the references
            assert scores["grounded_rouge_l"] == 0
    assert {"grounded_answer_share", "grounded_rouge_l"} <= set(result.decision["compared"])
    assert not any("closed-book only" in note for note in result.notes)
    [row] = list_versions()
    assert row["scores"] == result.scores


def test_dry_run_plans_and_writes_nothing(tmp_path, tiny_encoder_dir):
    cfg = refresh_yaml(tmp_path / "refresh.yaml", write_intents(tmp_path / "intents.csv"), tiny_encoder_dir)
    result = run_aigc("support", "refresh", "--config", str(cfg), "--dry-run", "--json")
    assert result.code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (
        plan["dry_run"]
        and plan["version"] is None
        and plan["heldout"]["would_freeze"] == {"intents": 8, "pairs": 0}
    )
    assert plan["components"] == {"intents": {"status": "train"}, "adapter": {"status": "carry"}}
    assert plan["data"]["intent_rows"] == 24 and plan["data"]["excluded_heldout"] == 8
    assert not support_registry().root.exists()
    assert not audit_events(action="model_refresh")


def test_cli_refresh_json_audit_and_bad_input(tmp_path, tiny_encoder_dir):
    intents = write_intents(tmp_path / "intents.csv")
    cfg = refresh_yaml(tmp_path / "refresh.yaml", intents, tiny_encoder_dir)
    assert json.loads(run_aigc("support", "versions", "--json").stdout) == []

    done = run_aigc("support", "refresh", "--config", str(cfg), "--skip-adapter", "--json")
    assert done.code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["version"] == "v0001" and result["promoted"] and result["active"] == "v0001"
    [event] = audit_events(action="model_refresh")
    assert event["target"] == "v0001" and event["details"]["promoted"] is True
    assert event["details"]["scores"]["new"] == result["scores"]["new"]

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nwhere is it,track_order\nrefund please,\n", encoding="utf-8")
    cases = [
        (("--to", "v9"), "error: no version 'v9' in"),
        (("--to", "latest"), "error: 'latest' is not a version name"),
        (
            ("--to", "v1", "--skip-adapter"),
            "error: --to activates an existing version; it takes no training options",
        ),
        (("--config", str(cfg), "--skip-adapter", "--skip-intents"), "error: nothing to retrain"),
        (
            ("--config", str(cfg), "--set", "tolerance=2"),
            "RefreshConfig: invalid value for ['tolerance']",
        ),
        (("--config", str(cfg), "--set", "tolerence=0.1"), "unknown config key(s) ['tolerence']"),
        (
            ("--config", str(cfg), "--set", f"intents_data={bad}"),
            "bad.csv: row 1 (line 3), field 'label': is empty",
        ),
    ]
    for args, message in cases:
        failed = run_aigc("support", "refresh", *args)
        assert failed.code == 2, (args, failed.stdout, failed.stderr)
        assert len(failed.error_lines) == 1 and message in failed.error_lines[0], (args, failed.stderr)
    assert [v.name for v in support_registry().versions()] == ["v0001"]  # nothing half-written


def test_a_kill_during_refresh_leaves_the_active_version_and_no_half_written_one(
    tmp_path, monkeypatch, tiny_encoder_dir
):
    data_dir = tmp_path / "data"
    cfg = refresh_yaml(tmp_path / "refresh.yaml", write_intents(tmp_path / "intents.csv"), tiny_encoder_dir)
    env = {
        **os.environ,
        "AIGC_DATA_DIR": str(data_dir),
        "AIGC_FAILPOINT": "versions.before_commit",
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("AIGC_DB_URL", None)
    cmd = [sys.executable, "-c", "from core.cli import main; main()", "support", "refresh", "--skip-adapter"]
    killed = subprocess.run(
        [*cmd, "--config", str(cfg)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert killed.returncode == EXIT_CODE, killed.stderr[-2000:]
    registry = support_registry(data_dir / "support" / "models")
    assert registry.versions() == [] and registry.active_name() is None  # nothing visible, nothing served
    assert list(registry.versions_dir.glob(".v0001.tmp-*")), (
        "the trained, evaluated build was never committed"
    )

    monkeypatch.setenv("AIGC_DATA_DIR", str(data_dir))
    from apps.customer_service.config import load_refresh_config

    result = refresh(config=load_refresh_config(cfg), bot_config=BotConfig(), skip_adapter=True)
    assert result.version == "v0001" and result.promoted and result.heldout["frozen_now"] == []
    assert not list(registry.versions_dir.glob(".v0001.tmp-*"))


@pytest.mark.slow
def test_the_guard_with_the_default_encoder_on_the_sample_intents(tmp_path):
    """MiniLM on the shipped 10-intent sample: one epoch learns it, swapped labels are refused."""
    from apps.customer_service.training_data import SAMPLE_INTENTS

    swapped = tmp_path / "swapped.csv"
    with SAMPLE_INTENTS.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    labels = sorted({r["label"] for r in rows})
    shift = {lab: labels[(i + 1) % len(labels)] for i, lab in enumerate(labels)}
    with swapped.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows((r["text"], shift[r["label"]]) for r in rows)
    training = {"epochs": 1, "show_progress_bar": False}
    first = refresh(config=RefreshConfig(intent_training=training), bot_config=BotConfig(), skip_adapter=True)
    assert first.promoted and first.scores["new"]["intent_accuracy"] >= 0.5, first.scores
    config = RefreshConfig(intents_data=str(swapped), intent_training=training)
    second = refresh(config=config, bot_config=BotConfig(), skip_adapter=True)
    assert not second.promoted and second.active == "v0001"
    assert second.scores["new"]["intent_accuracy"] < first.scores["new"]["intent_accuracy"] - 0.3


# Good answers share an opening the tiny LM learns in a few epochs; the wrong ones are about fruit.
GOOD_ANSWERS = [
    ("How long does shipping take?", "Our store policy says shipping takes five days."),
    ("Can I return a sale item?", "Our store policy says sale items return within thirty days."),
    ("Do you ship to Canada?", "Our store policy says we ship to Canada."),
    ("How do I reset my password?", "Our store policy says use the reset link."),
    ("Where is my refund?", "Our store policy says refunds take ten days."),
    ("Can I change my address?", "Our store policy says change it under Orders."),
    ("Do you sell gift cards?", "Our store policy says gift cards are sold online."),
    ("Is there a student discount?", "Our store policy says students get ten percent off."),
]
WRONG_ANSWERS = [(q, "Bananas ripen quickly beside apples on warm kitchen shelves.") for q, _ in GOOD_ANSWERS]
FAST_ANSWERS = {"epochs": 6, "lr": 3e-2, "batch_size": 2, "val_fraction": 0.0, "show_progress_bar": False}


@pytest.mark.slow
def test_a_worse_answer_adapter_is_refused_and_the_served_one_stays(
    tmp_path, tiny_encoder_dir, tiny_causal_lm_dir
):
    """A real adapter trained on wrong answers scores lower on the frozen held-out pairs: refused."""

    def adapter_refresh(pairs):
        config = fast_config(
            write_intents(tmp_path / "intents.csv"),
            tiny_encoder_dir,
            pairs_data=str(write_pairs(tmp_path / "pairs.jsonl", pairs)),
            answer_model=str(tiny_causal_lm_dir),
        )
        config = dataclasses.replace(config, max_new_tokens=6, answer_training=FAST_ANSWERS)
        return refresh(config=config, bot_config=BotConfig(), skip_intents=True)

    good = adapter_refresh(GOOD_ANSWERS)
    assert good.promoted and good.active == "v0001", good.scores
    assert good.scores["new"]["answer_rouge_l"] > good.scores["old"]["answer_rouge_l"]  # beat the base
    served = support_registry().active_path("adapter") / "adapter_model.safetensors"
    served_bytes = served.read_bytes()

    worse = adapter_refresh(WRONG_ANSWERS)
    assert worse.version == "v0002" and not worse.promoted and worse.active == "v0001"
    assert worse.scores["old"] == good.scores["new"]  # the served adapter, on the same frozen pairs
    assert worse.scores["new"]["answer_rouge_l"] < good.scores["new"]["answer_rouge_l"], worse.scores
    assert "answer_rouge_l" in worse.decision["worse"]
    registry = support_registry()
    assert registry.active_name() == "v0001" and [h["version"] for h in registry.history()] == ["v0001"]
    assert (registry.active_path("adapter") / "adapter_model.safetensors").read_bytes() == served_bytes
    rows = {r["version"]: r for r in list_versions(registry)}
    assert rows["v0002"]["promoted"] is False and rows["v0002"]["scores"] == worse.scores
    assert rows["v0001"]["scores"] == good.scores
    assert answer_adapter_path(None, str(tiny_causal_lm_dir)) == str(registry.active_path("adapter"))


def test_the_guard_decides_again_the_same_way_from_the_scores_stored_with_the_versions(guarded):
    """The guard on the real scores the refreshes stored on disk: re-deciding from them refuses v0002."""
    from core.model_versions import compare_scores

    registry = support_registry(guarded["registry"])
    records = {v.name: v.record for v in registry.versions()}
    served, worse, equal = (records[v]["scores"]["new"] for v in ("v0001", "v0002", "v0003"))
    verdict = compare_scores(served, worse)
    assert not verdict.promote and set(verdict.worse) == {"intent_accuracy", "intent_macro_f1"}
    assert verdict.to_dict() == records["v0002"]["decision"]  # what the refresh decided and stored
    assert compare_scores(served, equal).promote and records["v0003"]["decision"]["promote"]
    drop = served["intent_accuracy"] - worse["intent_accuracy"]
    assert not compare_scores(served, worse, tolerance=drop / 2).promote
    assert registry.active_name() == "v0003"
