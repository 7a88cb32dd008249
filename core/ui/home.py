"""Home page: what the suite is, its applications with links, and the models it runs on."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import __version__
from core.models import list_models
from core.ui import auth
from core.ui.shell import page_allowed, selected_apps

st.title("aigc-suite")
st.caption(f"version {__version__} · small pretrained language models, fine-tuned for three business jobs")

who = auth.viewer()
apps = selected_apps()
if not apps:
    st.info("No application is installed yet. Install the suite with `make run` to get all three.")
columns = st.columns(max(len(apps), 1))
for column, app in zip(columns, apps, strict=False):
    with column, st.container(border=True):
        st.subheader(app.title)
        st.write(app.description)
        usable = [(p, t, i) for p, t, i in app.pages if page_allowed(who, app.permission_for(p))]
        for path, title, icon in usable:
            st.page_link(path, label=title, icon=icon)
        if not usable:
            st.caption("Your role does not use this application.")

st.subheader("Models")
st.table(
    pd.DataFrame(
        [{k: row[k] for k in ("name", "kind", "status", "description", "path")} for row in list_models()]
    ).set_index("name")
)
