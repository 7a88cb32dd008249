"""Widgets and cached resources shared by the recommender pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from apps.recommender.ui import queries


@st.cache_resource(show_spinner="Loading the recommender model...")
def _load(path: str, fingerprint: str) -> Any:
    from apps.recommender.model import RecommenderModel

    return RecommenderModel.load(path)


def model_or_stop() -> Any:
    """The model chosen in the sidebar (default: the demo model); stops the page with help if absent."""
    default = queries.data_root() / "model"
    chosen = st.sidebar.text_input("Model directory", value=str(default), key="recommend_model_dir")
    path = Path(chosen).expanduser()
    if not (path / "manifest.json").is_file():
        st.info(
            f"No recommender model at `{path}`. Run `aigc demo` for the demo model, or "
            "`aigc recommend train` and enter its output directory in the sidebar."
        )
        st.stop()
    from apps.recommender.model import ModelError

    try:
        return _load(str(path), queries.model_fingerprint(path))
    except ModelError as err:
        st.error(str(err))
        st.stop()
