from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.plugins import ui_apps
from core.ui.shell import APP_SCRIPT
from tests.browser import chromium_page, screenshot, streamlit_server


def test_all_three_apps_register_pages():
    names = [a.name for a in ui_apps()]
    assert names == ["support", "finance", "recommend"]
    for app in ui_apps():
        assert app.title and app.description
        for path, title, _icon in app.pages:
            assert Path(path).is_file() and title


def test_home_page_renders_apps_and_models():
    # Through the suite's entry script: the home page links to pages that only the navigation registers.
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "aigc-suite"
    subheaders = [s.value for s in at.subheader]
    assert {"Customer service", "Finance monitor", "Recommender", "Models"} <= set(subheaders)
    table = at.table[0].value
    assert set(table.index) == {"smollm2-135m-instruct", "minilm-l6", "mpnet-base"}
    assert set(table.loc[["smollm2-135m-instruct", "minilm-l6"], "status"]) == {"installed"}
    # The optional encoder (the `accurate` extra) shows its state, installed or not.
    assert table.loc["mpnet-base", "status"] in {"installed", "not assembled", "missing"}


def test_no_pages_folder_beside_the_entry_script():
    # Streamlit runs an entry script that has a pages/ folder beside it in its old folder-based
    # multipage mode on a server's first run: the first deep link then answered "Page not found".
    assert not (Path(APP_SCRIPT).parent / "pages").exists()


def test_suite_entry_script_renders_home_by_default():
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "aigc-suite"


def test_app_filter_restricts_the_suite(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "finance")
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60).run()
    assert not at.exception
    subheaders = [s.value for s in at.subheader]
    assert "Finance monitor" in subheaders and "Customer service" not in subheaders


@pytest.mark.browser
def test_home_in_headless_chromium():
    with streamlit_server() as url, chromium_page() as page:
        page.goto(url)
        page.get_by_text("Finance monitor").first.wait_for(timeout=60_000)
        # the models table loads after the page (a status check per model): slow on a loaded machine
        page.get_by_text("smollm2-135m-instruct").first.wait_for(timeout=90_000)
        assert page.get_by_role("heading", name="aigc-suite").count() >= 1
        # viewer toolbar: Streamlit's developer menu (Deploy) is not offered, even on localhost
        assert page.get_by_text("Deploy", exact=True).count() == 0
        screenshot(page, "home")
