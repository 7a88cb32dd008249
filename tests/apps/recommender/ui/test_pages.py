"""The recommender pages in Streamlit's AppTest, inside the suite's navigation, on the sample model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apps.recommender.ui import PAGES, PAGES_DIR, pages, queries
from core.ui.shell import APP_SCRIPT
from tests.apps.recommender.sample_model import install_demo_state, saved_sample_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, sample_dataset, sample_minilm_vectors) -> Path:
    return saved_sample_model(tmp_path_factory.mktemp("rec-ui"), sample_dataset, sample_minilm_vectors)


@pytest.fixture(scope="module")
def report(sample_dataset, sample_minilm_vectors) -> dict:
    """A real evaluation report on the sample (baselines only: fast)."""
    from apps.recommender.baselines import ItemKNNScorer, PopularityScorer, TextScorer
    from apps.recommender.evaluation import evaluate

    vectors = sample_minilm_vectors[0]
    scorers = {
        "popularity": PopularityScorer,
        "itemknn": ItemKNNScorer,
        "text": lambda: TextScorer(item_vectors=vectors),
    }
    return evaluate(sample_dataset, scorers)


@pytest.fixture
def demo_state(model_dir, report, monkeypatch) -> Path:
    monkeypatch.setenv("AIGC_UI_APPS", "recommend")
    return install_demo_state(Path(os.environ["AIGC_DATA_DIR"]), model_dir, report)


def test_user_page_shows_the_users_rows_of_the_batch_output(demo_state):
    from apps.recommender.batch.job import run_batch
    from apps.recommender.config import BatchConfig
    from apps.recommender.model import ModelLoader

    out = demo_state / "recommendations.parquet"
    run_batch(
        ModelLoader(demo_state / "model"), out, ["U0002", "U0007"], BatchConfig(k=7), show_progress_bar=False
    )
    at = open_page("user.py")  # U0001 first: not in this output
    assert len(at.table) == 2 and "`U0001` is not in this batch output." in [c.value for c in at.caption]
    assert "14 rows for 2 users, 14 distinct items" in " ".join(c.value for c in at.caption)
    at.selectbox(key="recommend_user").set_value("U0007").run()
    live, batch = at.table[1].value, at.table[2].value
    assert batch["item_id"].tolist() == live["item_id"].head(7).tolist()  # the job and the page agree
    assert batch["rank"].tolist() == list(range(1, 8))


def open_page(name: str) -> AppTest:
    """Run the suite entry script, then switch to one of this app's pages."""
    at = AppTest.from_file(APP_SCRIPT, default_timeout=90)
    at.run()
    at.switch_page(os.path.relpath(PAGES_DIR / name, Path(APP_SCRIPT).parent)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_pages_are_listed_for_the_suite():
    app = pages()
    assert app.name == "recommend"
    assert [Path(p).name for p, _t, _i in app.pages] == [name for name, _t, _i in PAGES]
    assert all(Path(p).is_file() for p, _t, _i in app.pages)


def test_user_page_shows_history_and_unseen_recommendations(demo_state, sample_dataset):
    at = open_page("user.py")
    user = at.selectbox(key="recommend_user")
    assert user.value == "U0001"
    user.set_value("U0007").run()
    at.slider(key="recommend_k").set_value(15).run()
    assert not at.exception
    history, recs = (t.value for t in at.table)
    seen = set(sample_dataset.interactions.loc[sample_dataset.interactions["user_id"] == "U0007", "item_id"])
    assert set(history["item_id"]) <= seen and len(history) == min(20, len(seen))
    assert len(recs) == 15 and not set(recs["item_id"]) & seen
    assert recs["rank"].tolist() == list(range(1, 16))
    assert recs["reason"].str.contains("similar to '").any()


def test_similar_items_page(demo_state):
    at = open_page("similar.py")
    at.selectbox(key="recommend_item").set_value("B002").run()
    table = at.table[0].value
    assert len(table) == 10 and "B002" not in set(table["item_id"])
    # The sample's series: the same detective's other cases are the nearest books.
    assert "B001" in set(table["item_id"].head(3))
    assert any("A Quiet Word at Hollowmere" in m.value for m in at.markdown)


def test_evaluation_page_charts_the_report(demo_state, report):
    at = open_page("evaluation.py")
    assert len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart")) >= 2
    table = at.table[0].value
    assert list(table.index) == ["popularity", "itemknn", "text"]
    assert table.loc["itemknn", "ndcg@10"] == pytest.approx(report["models"]["itemknn"]["ndcg@10"], abs=1e-4)
    cold = at.table[1].value
    assert cold.loc["popularity", "recall@50"] == 0 and cold.loc["text", "recall@50"] > 0


def test_pages_explain_a_missing_model(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "recommend")
    at = open_page("user.py")
    assert "aigc demo" in at.info[0].value


def test_user_page_without_batch_output(demo_state):
    at = open_page("user.py")
    assert len(at.table) == 2 and any(c.value.startswith("No batch output at") for c in at.caption)


def test_queries_reject_a_bad_eval_file(tmp_path):
    (tmp_path / "e.json").write_text('{"x": 1}')
    with pytest.raises(ValueError, match="no 'models' section"):
        queries.load_eval(tmp_path / "e.json")
    assert queries.load_eval(tmp_path / "missing.json") is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("out.csv", b"user,item\nU1,I1\n", "column 'user_id' is missing"),
        ("out.csv", "user_id,item_id\nU1,Ã\xa9t\xe9\n".encode("latin-1"), "not a batch output"),
        ("out.csv", b"", "not a batch output"),
        ("out.parquet", b"PAR1 but not parquet", "not a batch output"),
    ],
)
def test_a_bad_batch_output_file_is_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        queries.batch_summary(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_the_user_page_shows_a_bad_batch_output_as_one_error(demo_state):
    (demo_state / "recommendations.parquet").write_bytes(b"PAR1 but not parquet")
    at = open_page("user.py")
    assert not at.exception and "not a batch output" in at.error[0].value


@pytest.mark.parametrize(
    ("report", "key"),
    [
        ({"models": {"itemknn": [0.1, 0.2]}}, "'models.itemknn' must be an object of metrics"),
        ({"models": {"itemknn": {"hr@10": "high"}}}, "'models.itemknn.hr@10' must be a number"),
        ({"models": {}, "protocol": "leave-last-out"}, "'protocol' must be an object"),
        ({"models": {}, "cold_start": {"models": [1]}}, "'cold_start.models' must be an object"),
    ],
)
def test_an_eval_report_of_the_wrong_shape_is_refused_naming_the_key(tmp_path, report, key):
    import json

    path = tmp_path / "e.json"
    path.write_text(json.dumps(report))
    with pytest.raises(ValueError, match=key.replace("[", r"\[")):
        queries.load_eval(path)
