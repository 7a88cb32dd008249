"""The Model versions page in AppTest: versions, scores, the old-vs-new chart, promote, roll back, roles.

The versions are committed through the real registry (artifact manifests, records as a refresh
writes them, the database migrated as a refresh leaves it) without training, so the page's reads
and switches run against real files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apps.customer_service.served_models import support_registry
from apps.customer_service.ui import PAGES_DIR, queries
from core.auth import Role, add_user, audit_events
from core.schema import migrate
from core.ui.auth import Viewer
from core.ui.shell import APP_SCRIPT, page_plan


@pytest.fixture(autouse=True)
def support_only(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "support")


def add_version(old: dict, new: dict, promote: bool, worse: dict | None = None) -> str:
    registry = support_registry()
    with registry.lock(), registry.build() as candidate:
        (candidate.path / "intents").mkdir()
        (candidate.path / "intents" / "weights.bin").write_bytes(b"w")
        candidate.write_record(
            {
                "components": {"intents": {"status": "trained"}, "adapter": {"status": "absent"}},
                "scores": {"old": old, "new": new},
                "decision": {"promote": promote, "worse": worse or {}, "compared": list(new)},
            }
        )
    if promote:
        registry.activate(candidate.name, actor="cli:ops")
    return candidate.name


@pytest.fixture
def three_versions() -> list[str]:
    migrate()
    return [
        add_version({}, {"intent_accuracy": 0.8, "intent_macro_f1": 0.7}, True),
        add_version(
            {"intent_accuracy": 0.8, "intent_macro_f1": 0.7},
            {"intent_accuracy": 0.1, "intent_macro_f1": 0.05},
            False,
            {"intent_accuracy": [0.8, 0.1], "intent_macro_f1": [0.7, 0.05]},
        ),
        add_version(
            {"intent_accuracy": 0.8, "intent_macro_f1": 0.7},
            {"intent_accuracy": 0.9, "intent_macro_f1": 0.8},
            True,
        ),
    ]


def open_page() -> AppTest:
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60)
    at.run()
    at.switch_page(os.path.relpath(PAGES_DIR / "models.py", Path(APP_SCRIPT).parent)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_without_versions_the_page_says_what_to_run():
    at = open_page()
    assert "aigc support refresh" in at.info[0].value


def test_versions_scores_chart_and_a_rollback(three_versions):
    at = open_page()
    frame = at.dataframe[0].value
    assert list(frame.index) == three_versions
    assert list(frame["active"]) == ["", "", "active"]
    assert frame.loc["v0002", "passed guard"].startswith("no (intent_accuracy")
    assert frame.loc["v0003", "Intent accuracy"] == 0.9
    assert at.get("vega_lite_chart"), "the old-vs-new bar chart"

    picker = at.selectbox(key="support_versions_pick")
    assert picker.options == ["v0001", "v0002"] and picker.value == "v0002"
    assert "v0002 did not pass the guard" in at.warning[0].value
    picker.select("v0001").run()
    [button] = [b for b in at.button if b.key == "support_versions_switch"]
    assert button.label == "Roll back"
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert support_registry().active_name() == "v0001"
    [event] = audit_events(action="model_rollback")
    assert event["target"] == "v0001" and event["details"] == {"previous": "v0003", "manual": True}
    history = at.table[0].value
    assert list(history["action"]) == ["rollback", "promote", "promote"]  # newest first

    at.selectbox(key="support_versions_pick").select("v0003").run()
    [button] = [b for b in at.button if b.key == "support_versions_switch"]
    assert button.label == "Promote"


def test_only_admins_may_use_the_page(three_versions):
    add_user("kim", "kb_admin", "kim-password-1")
    kb_admin = Viewer("kim", Role.KB_ADMIN, True)
    allowed = {Path(path).name: ok for _s, path, _t, _u, _p, ok in page_plan(kb_admin)}
    assert allowed["models.py"] is False and allowed["admin.py"] is True
    assert {Path(p).name: ok for _s, p, _t, _u, _p, ok in page_plan(Viewer("root", Role.ADMIN, True))}[
        "models.py"
    ]

    at = AppTest.from_file(str(PAGES_DIR / "models.py"), default_timeout=60)
    at.session_state["_aigc_viewer"] = kb_admin
    at.run()
    assert "Access denied" in at.error[0].value and not at.button
    assert audit_events(action="access_denied")[0]["target"] == "Model versions"
    assert support_registry().active_name() == "v0003"


def test_chart_rows_and_switch_labels():
    rows = [
        {"version": "v0009", "active": False, "scores": {"old": {}, "new": {"answer_bleu": 0.1}}},
        {
            "version": "v0010",
            "active": True,
            "scores": {"old": {"answer_bleu": 0.1}, "new": {"answer_bleu": 0.2}},
        },
    ]
    assert queries.score_chart_rows(rows, "answer_bleu") == [
        {"version": "v0009", "model": "new", "score": 0.1},
        {"version": "v0010", "model": "old", "score": 0.1},
        {"version": "v0010", "model": "new", "score": 0.2},
    ]
    assert queries.score_chart_rows(rows, "intent_accuracy") == []
    assert queries.switch_label(rows, "v0009") == "Roll back"  # numbers, not strings: v0009 < v0010
    assert queries.switch_label([{**rows[0], "active": True}, rows[1]], "v0010") == "Promote"


@pytest.mark.parametrize(
    ("damage", "key"),
    [
        ({"decision": "promoted"}, "'decision' must be an object"),
        ({"scores": {"new": {"intent_accuracy": 0.9}}}, "'scores.old' must be an object"),
        ({"scores": {"old": {}, "new": {"intent_accuracy": "high"}}}, "'scores.new.intent_accuracy' must be"),
        ({"components": {"intents": "ok[/b]"}}, "'components' must be an object of objects"),
        ({"created_at": 1733500000}, "'created_at' must be a date-time text"),
    ],
)
def test_a_record_edited_by_hand_is_one_line_naming_file_and_key(three_versions, damage, key):
    """On the page, and in `aigc support versions` (exit 2, no traceback)."""
    import json

    from tests.cli_run import assert_one_line_error, run_aigc

    record = support_registry().versions_dir / three_versions[1] / "record.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), **damage}), encoding="utf-8")
    assert_one_line_error(run_aigc("support", "versions"), str(record), key)
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60)
    at.run()
    at.switch_page(os.path.relpath(PAGES_DIR / "models.py", Path(APP_SCRIPT).parent)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert key in at.error[0].value and str(record) in at.error[0].value


def test_the_versions_table_prints_a_status_with_brackets_as_written(three_versions, wide_output):
    import json

    from tests.cli_run import run_aigc

    record = support_registry().versions_dir / three_versions[0] / "record.json"
    data = json.loads(record.read_text())
    data["components"]["intents"]["status"] = "ok[/b]"
    record.write_text(json.dumps(data), encoding="utf-8")
    result = run_aigc("support", "versions")
    assert result.code == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "ok[/b]" in "".join(result.stdout.split()), result.stdout


def test_a_damaged_pointer_history_is_one_line_on_the_page(three_versions):
    import json

    from core.model_versions import ACTIVE_FILE

    pointer = support_registry().root / ACTIVE_FILE
    data = json.loads(pointer.read_text())
    data["history"].append("promoted by hand")
    pointer.write_text(json.dumps(data), encoding="utf-8")
    at = open_page()
    assert "history entry 3 must be an object" in at.error[0].value and str(pointer) in at.error[0].value
