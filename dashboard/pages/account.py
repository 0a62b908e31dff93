"""My account: who is signed in, and changing one's own password."""

import streamlit as st

from core.access.admin import change_own_password
from core.access.permissions import NotAllowed
from core.access.users import MIN_PASSWORD_LENGTH
from core.store.faults import StorageFault
from dashboard import auth, resources

engine = resources.get_engine()
me = auth.current()
st.title("My account")
st.markdown(f"Signed in as **{me.name}** (`{me.username}`), role **{me.role}**.")
if me.kind == "oidc":  # single sign-on: no password here
    st.info("You sign in through your organisation's account. Your password, and the groups "
            "that decide your role here, are managed there; ask its IT to change them.",
            icon=":material/badge:")
    st.stop()
if flash := st.session_state.pop("account_flash", None):
    st.success(flash)

with st.form("account_password_form", clear_on_submit=True):
    st.markdown("**Change my password**")
    current = st.text_input("Current password", type="password", key="account_current")
    new = st.text_input(f"New password (at least {MIN_PASSWORD_LENGTH} characters)",
                        type="password", key="account_new")
    again = st.text_input("New password again", type="password", key="account_again")
    if st.form_submit_button("Change password", type="primary"):
        if new != again:
            st.error("The two new passwords differ. Nothing was changed.")
        else:
            try:
                change_own_password(engine, me.username, current, new, actor_role=me.role)
            except (NotAllowed, ValueError, StorageFault) as exc:
                st.error(str(exc))
            else:
                st.session_state["account_flash"] = (
                    "Password changed. Sign-ins saved in other browsers have ended.")
                st.rerun()
st.caption("Forgot your password? An admin can set a new one on Users & settings.")
