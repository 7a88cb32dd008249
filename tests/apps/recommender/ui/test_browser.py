"""The recommender pages in a real headless Chromium, on a model fit on the shipped sample."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.apps.recommender.sample_model import install_demo_state, saved_sample_model
from tests.browser import assert_page_found, chromium_page, screenshot, streamlit_server

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


@pytest.fixture
def demo_state(tmp_path_factory, sample_dataset, sample_minilm_vectors) -> Path:
    model_dir = saved_sample_model(
        tmp_path_factory.mktemp("rec-browser"), sample_dataset, sample_minilm_vectors
    )
    from apps.recommender.baselines import ItemKNNScorer, PopularityScorer, TextScorer
    from apps.recommender.evaluation import evaluate

    vectors = sample_minilm_vectors[0]
    scorers = {
        "popularity": PopularityScorer,
        "itemknn": ItemKNNScorer,
        "text": lambda: TextScorer(item_vectors=vectors),
    }
    report = evaluate(sample_dataset, scorers)
    root = install_demo_state(Path(os.environ["AIGC_DATA_DIR"]), model_dir, report)
    from apps.recommender.batch.job import run_batch
    from apps.recommender.config import BatchConfig
    from apps.recommender.model import ModelLoader

    users = ["U0001", "U0002", "U0003"]
    run_batch(ModelLoader(root / "model"), root / "recommendations.parquet", users, BatchConfig(k=5))
    return root


def test_user_page_and_evaluation_in_chromium(demo_state):
    with streamlit_server(["recommend"]) as url, chromium_page(height=2100) as page:
        page.goto(f"{url}/recommend-user")
        page.get_by_role("heading", name="Recommendations", exact=True).wait_for(timeout=90_000)
        assert_page_found(page)
        tables = page.locator("[data-testid='stTable']")
        expect(tables).to_have_count(3, timeout=60_000)
        recs = tables.nth(1)
        expect(recs.locator("tbody tr")).to_have_count(10, timeout=30_000)
        expect(recs).to_contain_text("similar to '")
        expect(tables.nth(0)).to_contain_text("purchase")  # the history table
        expect(tables.nth(2).locator("tbody tr")).to_have_count(5)  # U0001's rows of the batch output
        page.get_by_text("15 rows for 3 users").wait_for(timeout=30_000)
        time.sleep(1)
        screenshot(page, "recommend_user")

        page.goto(f"{url}/recommend-evaluation")
        page.get_by_role("heading", name="Next item").wait_for(timeout=60_000)
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=30_000)
        expect(page.locator("[data-testid='stTable']").first).to_contain_text("itemknn")
        time.sleep(1.5)  # let Vega draw before the screenshot
        screenshot(page, "recommend_evaluation")
