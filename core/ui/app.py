"""Entry script of the Streamlit suite: ``streamlit run core/ui/app.py`` (what ``aigc ui`` runs).

Pages come from the installed apps (entry point group ``aigc.ui``); ``AIGC_UI_APPS`` restricts
the suite to some apps, which is how ``aigc support ui`` starts just the support bot.
"""

import streamlit as st

from core.ui.shell import build_navigation

st.set_page_config(page_title="aigc-suite", page_icon=":material/smart_toy:", layout="wide")
st.navigation(build_navigation()).run()
