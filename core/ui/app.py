"""Entry script of the Streamlit suite: ``streamlit run core/ui/app.py`` (what ``aigc ui`` runs).

Pages come from the installed apps (entry point group ``aigc.ui``); ``AIGC_UI_APPS`` restricts
the suite to some apps, which is how ``aigc support ui`` starts just the support bot. Who is
signed in decides which pages exist in the navigation (see ``core.ui.auth``).
"""

import streamlit as st

from core.log_fields import configure_service_logging
from core.ui import auth
from core.ui.shell import build_navigation

configure_service_logging()  # the server's log: the suite's INFO lines with their fields (once)
st.set_page_config(page_title="aigc-suite", page_icon=":material/smart_toy:", layout="wide")
viewer = auth.resolve_viewer()
# A visitor who is not signed in gets no menu at all: every URL shows the sign-in form.
page = st.navigation(build_navigation(viewer), position="sidebar" if viewer.signed_in else "hidden")
auth.session_cookie_script()
auth.account_sidebar(viewer)
page.run()
