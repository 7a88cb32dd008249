"""Users (admins): add users, change roles, disable, reset passwords; every change is audited."""

import pandas as pd
import streamlit as st

from core.auth import (
    Permission,
    Role,
    UserError,
    add_user,
    list_users,
    reset_password,
    set_disabled,
    set_role,
)
from core.ui import auth
from core.ui.markdown import escape_markdown

who = auth.require(Permission.USERS_MANAGE, "Users")
engine = auth.ui_engine()
st.title("Users")
users = list_users(engine=engine)
st.dataframe(
    pd.DataFrame(
        [
            {
                "name": u.name,
                "role": u.role.value,
                "state": "disabled" if u.disabled else ("locked" if u.locked() else "active"),
                "last sign-in (UTC)": f"{u.last_sign_in_at:%Y-%m-%d %H:%M}" if u.last_sign_in_at else "never",
            }
            for u in users
        ]
    ),
    hide_index=True,
    width="stretch",
)
roles = [r.value for r in Role]

with st.form("users_add", clear_on_submit=True):
    st.subheader("Add a user")
    cols = st.columns(3)
    name = cols[0].text_input("User name")
    role = cols[1].selectbox("Role", roles)
    password = cols[2].text_input("Initial password", type="password")
    if st.form_submit_button("Add user", icon=":material/person_add:"):
        try:
            add_user(name, role, password, actor=who.name, engine=engine)
        except UserError as err:
            st.error(escape_markdown(str(err)))
        else:
            st.success(f"Added {escape_markdown(name.strip())} ({role}).")
            st.rerun()

if users:
    st.subheader("Change a user")
    names = [u.name for u in users]
    target = st.selectbox("User", names, key="users_target")
    current = next(u for u in users if u.name == target)
    cols = st.columns(3)
    new_role = cols[0].selectbox("Role", roles, index=roles.index(current.role.value), key="users_role")
    if cols[0].button("Set role", disabled=new_role == current.role.value):
        set_role(target, new_role, actor=who.name, engine=engine)
        st.rerun()
    if target == who.name:
        cols[1].caption("You cannot disable yourself.")
    elif cols[1].button("Enable" if current.disabled else "Disable"):
        set_disabled(target, not current.disabled, actor=who.name, engine=engine)
        st.rerun()
    new_password = cols[2].text_input("New password", type="password", key="users_new_password")
    if cols[2].button("Reset password", disabled=not new_password):
        try:
            reset_password(target, new_password, actor=who.name, engine=engine)
        except UserError as err:
            st.error(escape_markdown(str(err)))
        else:
            st.success(f"Password of {target} reset; their sessions ended.")
