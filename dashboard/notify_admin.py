"""The Notifications section of Users & settings (admin): the contact points and policies
in force, quiet hours, failed deliveries, the delivery log with every attempt, and a test
message per contact. Kept out of pages/admin.py so the page stays a description of the
screen; everything here reads through core.monitoring.notify."""

from __future__ import annotations

from urllib.parse import unquote

import pandas as pd
import streamlit as st

from core.access.permissions import NotAllowed
from core.config import Settings
from core.monitoring.alerts import SCREENING_NOTE
from core.monitoring.notify import (
    contact_rows,
    delivery_log,
    failed_deliveries,
    notify_config,
    send_test,
)
from core.store.db import session_scope
from core.store.faults import StorageFault
from core.store.models import Notification

NOTE = (f"{SCREENING_NOTE} Every notification says so. It carries bed, initials, rule, "
        "severity, grade, day after infusion and a link to the patient page: never a name, "
        "a study ID or a value unless the site file turns include_identifiers on.")
_OPEN = ("pending", "sending")


def _when(value) -> str:  # noqa: ANN001
    return "" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M:%S}"


def _log_frame(rows: list[dict], failed: bool = False) -> pd.DataFrame:
    """One row per notification, the reason of a failure or cancellation up front."""
    out = [{
        "#": r["id"], "Created (UTC)": _when(r["created_at"]), "Event": r["event"],
        "Contact": r["contact"], "Tier": r["tier"], "Rule": r["rule"] or "",
        "Bed": r["bed"] or "", "Severity": r["severity"], "Status": r["status"],
        "Attempts": r["attempts"], "Reason / last error": r["last_error"] or "",
        "Delivered (UTC)": _when(r["delivered_at"]),
        "Next attempt (UTC)": _when(r["next_attempt_at"]) if r["status"] in _OPEN else "",
    } for r in rows]
    frame = pd.DataFrame(out)
    if failed and not frame.empty:
        frame = frame.drop(columns=["Status", "Delivered (UTC)", "Next attempt (UTC)"])
    return frame


def _attempts_frame(rows: list[dict]) -> pd.DataFrame:
    flat = [{"#": r["id"], "Contact": r["contact"], "Attempt": i, "Worker": a["worker"],
             "Started (UTC)": _when(a["started_at"]), "Finished (UTC)": _when(a["finished_at"]),
             "Outcome": {True: "delivered", False: "failed", None: "no outcome"}[a["ok"]],
             "Error": a["error"] or ""}
            for r in rows for i, a in enumerate(r["attempt_log"], start=1)]
    return pd.DataFrame(flat, columns=["#", "Contact", "Attempt", "Worker", "Started (UTC)",
                                       "Finished (UTC)", "Outcome", "Error"])


_WIDE = {"Reason / last error": st.column_config.TextColumn(width="large"),
         "Error": st.column_config.TextColumn(width="large")}


def _test_result(engine, nid: int) -> tuple[bool, str]:  # noqa: ANN001
    with session_scope(engine) as s:
        row = s.get(Notification, nid)
        assert row is not None
        if row.status == "delivered":
            return True, f"Test #{nid} delivered to {row.contact}."
        return False, f"Test #{nid} to {row.contact} {row.status}: {row.last_error}"


def section(engine, settings: Settings, me) -> None:  # noqa: ANN001
    """Render the section (the caller has checked that `me` is an admin)."""
    st.subheader("Notifications")
    st.caption(NOTE)
    try:
        config = notify_config(settings)
    except ValueError as exc:
        st.error(f"The notification settings cannot be used, so nothing is being sent: {exc}")
        return
    where = settings.site_config or "(no site file: set CARTWATCH_SITE_CONFIG)"
    st.markdown(
        f"**Policy** (from `{where}`): quiet hours {config.describe_quiet_hours()}, for info "
        f"and warning only (severe is never held) · at most {config.max_attempts} attempts, "
        f"waiting {config.backoff.total_seconds():g} s after the first failure, doubling up "
        f"to {config.backoff_max.total_seconds():g} s · lease {config.lease.total_seconds():g} s "
        f"· identifiers {'ON' if config.include_identifiers else 'off'}")
    if not config.contacts:
        st.info("No contact points are configured, so no notification leaves the app. Add "
                "`[[notify.contact]]` tables (name, url, min_severity, rules, tier) to the "
                "site file.")
    else:
        st.markdown("**Contact points and policies**")
        result = None
        for i, c in enumerate(contact_rows(config)):
            box = st.container(border=True)
            left, right = box.columns([5, 1], vertical_alignment="center")
            left.markdown(
                f"**{c['name']}** · `{c['kind']}` · {c['min_severity']} and above · "
                f"{c['rules']} · tier {c['tier']} (when the alert {c['when']}) · "
                f"signing: {c['signing']}  \n`{unquote(c['target'].split('?')[0])}`")
            if right.button("Send a test", key=f"admin_notify_test_{i}",
                            icon=":material/send:"):
                try:
                    nid = send_test(engine, settings, c["name"], me.username, role=me.role)
                    result = _test_result(engine, nid)
                except (NotAllowed, ValueError, StorageFault) as exc:
                    result = (False, str(exc))
        if result is not None:
            (st.success if result[0] else st.error)(result[1])

    with session_scope(engine) as s:
        failed = failed_deliveries(s)
        log = delivery_log(s, limit=50)
    st.markdown("**Failed deliveries**")
    if failed:
        st.error(f"{len(failed)} notification(s) could not be delivered after every retry. "
                 "Check the contact point, then send a test.")
        st.dataframe(_log_frame(failed, failed=True), hide_index=True, width="stretch",
                     column_config=_WIDE, key="admin_notify_failed")
    else:
        st.caption("None.")
    st.markdown("**Delivery log** (latest 50)")
    if log:
        st.dataframe(_log_frame(log), hide_index=True, width="stretch", column_config=_WIDE,
                     key="admin_notify_log")
        with st.expander("Every delivery attempt of these notifications"):
            st.dataframe(_attempts_frame(log), hide_index=True, width="stretch",
                         column_config=_WIDE, key="admin_notify_attempts")
    else:
        st.caption("Nothing sent yet.")
