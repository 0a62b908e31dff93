"""Users & settings (admin): the users; adding one; a user's role, password and deactivation;
site settings; the code map and interfaces; notifications (contact points, delivery log, tests)."""

import pandas as pd
import streamlit as st

from core.access.admin import list_users, reset_password, set_active, set_role
from core.access.permissions import NotAllowed
from core.access.users import MIN_PASSWORD_LENGTH, create_user
from core.capture.corrections import verification_required
from core.capture.entry import save_site_setting
from core.store.faults import StorageFault
from core.store.models import Role
from dashboard import auth, codemap_admin, interfaces_admin, notify_admin, resources

engine = resources.get_engine()
me = auth.current()
st.title("Users & settings")
st.caption("Nobody is ever deleted: a user who leaves is deactivated and can no longer sign "
           "in. Every change here goes to the audit trail.")
if flash := st.session_state.pop("admin_flash", None):
    st.success(flash)


def attempt(action, done: str) -> None:  # noqa: ANN001
    """Run one write; show core's refusal, or keep the message for after the rerun."""
    try:
        action()
    except (NotAllowed, ValueError, StorageFault) as exc:
        st.error(str(exc))
        return
    st.session_state["admin_flash"] = done
    st.rerun()


users = pd.DataFrame(list_users(engine))
st.subheader("Users")
st.dataframe(users.rename(columns={"username": "User name", "name": "Name", "role": "Role",
                                   "active": "Active", "created_at": "Created (UTC)"}),
             hide_index=True, width="stretch", key="admin_users")

add, change = st.columns(2)
with add.form("admin_add_form", border=True):
    st.markdown("**Add a user**")
    username = st.text_input("User name (for signing in)", key="admin_new_username",
                             placeholder="e.g. nurse.kim")
    name = st.text_input("Full name", key="admin_new_name", placeholder="e.g. Kim Lee")
    role = st.selectbox("Role", [r.value for r in Role], index=2, key="admin_new_role",
                        help="display: huddle screen only · viewer: reads everything · "
                             "nurse: enters data · clinician: also acknowledges alerts and "
                             "documents episodes · admin: also users and settings")
    password = st.text_input(f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
                             type="password", key="admin_new_password")
    again = st.text_input("Password again", type="password", key="admin_new_again")
    if st.form_submit_button("Add user", type="primary"):
        if password != again:
            st.error("The two passwords differ.")
        else:
            attempt(lambda: create_user(engine, username, role, password,
                                        display_name=name.strip() or None, actor=me.username,
                                        actor_role=me.role),
                    f"User {username.strip()} ({role}) added. Give them the password in person.")

with change.container(border=True):
    st.markdown("**Change a user**")
    if not users.empty:
        by_name = users.set_index("username")
        who = st.selectbox("User", list(users["username"]), key="admin_pick",
                           format_func=lambda u: f"{u} · {by_name.at[u, 'role']} · "
                           + ("active" if by_name.at[u, "active"] else "deactivated"))
        roles = [r.value for r in Role]
        left, right = st.columns([3, 2], vertical_alignment="bottom")
        new_role = left.selectbox("Role", roles, index=roles.index(by_name.at[who, "role"]),
                                  key=f"admin_role_{who}")
        if right.button("Save role", key="admin_save_role",
                        disabled=new_role == by_name.at[who, "role"]):
            attempt(lambda: set_role(engine, who, new_role, me.username, actor_role=me.role),
                    f"{who} is now a {new_role}; it applies at their next click.")
        with st.form("admin_password_form", border=False, clear_on_submit=True):
            st.markdown(f"New password for **{who}** (they forgot theirs, or are locked out)")
            new_pw = st.text_input(f"New password (at least {MIN_PASSWORD_LENGTH} characters)",
                                   type="password", key="admin_reset_password")
            new_again = st.text_input("New password again", type="password",
                                      key="admin_reset_again")
            if st.form_submit_button("Set password"):
                if new_pw != new_again:
                    st.error("The two passwords differ.")
                else:
                    attempt(lambda: reset_password(engine, who, new_pw, me.username,
                                                   actor_role=me.role),
                            f"New password set for {who}: their saved sign-ins have ended. "
                            "Give them the password in person.")
        if by_name.at[who, "active"]:
            if st.button("Deactivate", key="admin_deactivate", icon=":material/person_off:"):
                attempt(lambda: set_active(engine, who, False, me.username, actor_role=me.role),
                        f"User {who} deactivated: they can no longer sign in.")
        elif st.button("Reactivate", key="admin_reactivate"):
            attempt(lambda: set_active(engine, who, True, me.username, actor_role=me.role),
                    f"User {who} reactivated.")

st.subheader("Site settings")
required = verification_required(engine)
if st.toggle("Hand-entered lab values need a second person's check (verification queue)",
             value=required, key="admin_verification") != required:
    attempt(lambda: save_site_setting(engine, "require_verification", not required,
                                      me.username, role=me.role),
            "Verification setting saved.")
st.caption("Rule thresholds are set per site in the file named by CARTWATCH_SITE_CONFIG; "
           "the Rules in force page shows what runs.")

st.divider()
codemap_admin.section(engine, me)
interfaces_admin.section(engine, me)

st.divider()
notify_admin.section(engine, resources.get_settings(), me)
