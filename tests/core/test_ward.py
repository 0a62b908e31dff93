"""Ward views over a small SQLite DB: summary row, concern sort, changes, inbox, masking."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from core.monitoring.alert_actions import acknowledge, snooze
from core.monitoring.alerts import sync_alerts
from core.rules.base import EvidenceItem, Finding, Status
from core.rules.catalog import all_specs
from core.store.db import session_scope
from core.store.models import Alert, EvaluationRun, LabResult, Patient, PatientStatus
from core.views.changes import changes_since, freshness
from core.views.huddle import huddle_tiles, initials_only, scrub
from core.views.inbox import InboxFilter, alert_inbox
from core.views.ward import (
    filter_summary,
    trend_arrow,
    ward_summary,
)

NOW = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
SPECS = {s.rule.id: s for s in all_specs()}


def lab(pk: int, analyte: str, when: datetime, value: float, unit: str) -> LabResult:
    return LabResult(patient_pk=pk, analyte=analyte, collected_at=when, value=value, unit=unit,
                     original_value=str(value), original_unit=unit)


def met(rule: str, since: float, grade: int | None = None) -> Finding:
    return Finding(rule=rule, status=Status.MET, since_day=since, grade=grade,
                   evidence=[EvidenceItem(why="test evidence", analyte="ferritin", day=since)])


@pytest.fixture
def ward(engine, add):  # type: ignore[no-untyped-def]
    """Three active patients and one discharged: calm, CRS 2 + IEC-HS, and no labs today."""
    calm, sick, gap, gone = add(
        Patient(patient_id="MRN-0001", initials="A.B.", bed="1", product="axi-cel",
                infusion_date=date(2026, 3, 10)),
        Patient(patient_id="MRN-0002", initials="CD", bed="2", product="tisa-cel",
                infusion_date=date(2026, 3, 8)),
        Patient(patient_id="MRN-0003", initials="EF", bed="3", product="axi-cel",
                infusion_date=date(2026, 3, 5)),
        Patient(patient_id="MRN-0004", initials="GH", bed="4", product="axi-cel",
                infusion_date=date(2026, 1, 5), status=PatientStatus.DISCHARGED),
    )
    rows = []
    for i, (f, fib) in enumerate([(400, 300), (380, 310), (390, 310)]):
        at = NOW.replace(hour=6) - timedelta(days=2 - i)
        rows += [lab(calm.id, "ferritin", at, f, "ng/mL"),
                 lab(calm.id, "fibrinogen", at, fib, "mg/dL")]
    for i, f in enumerate([900, 2000, 5200]):
        rows.append(lab(sick.id, "ferritin", NOW.replace(hour=6) - timedelta(days=2 - i), f,
                        "ng/mL"))
    rows.append(lab(gap.id, "anc", NOW.replace(hour=6) - timedelta(days=3), 0.4, "10^9/L"))
    rows.append(lab(gone.id, "anc", NOW.replace(hour=6), 2.0, "10^9/L"))
    add(*rows)
    with session_scope(engine) as s:
        t0 = NOW - timedelta(hours=30)
        sync_alerts(s, calm.id, [met("ctcae_hemoglobin", 1, 1)], SPECS, t0)
        sync_alerts(s, sick.id, [met("crs_grade", 9, 1), met("iec_hs", 11)], SPECS, t0)
        sync_alerts(s, sick.id, [met("crs_grade", 9, 2), met("iec_hs", 11)], SPECS,
                    NOW - timedelta(hours=2))
        sync_alerts(s, gap.id, [met("icaht_early", 1, 2)], SPECS, NOW - timedelta(hours=2))
        s.add(EvaluationRun(as_of=NOW - timedelta(hours=1), finished_at=NOW - timedelta(hours=1)))
    return {"calm": calm.id, "sick": sick.id, "gap": gap.id, "gone": gone.id}


def test_summary_has_one_row_per_active_patient_sorted_by_concern(engine, ward):
    with session_scope(engine) as s:
        summary = ward_summary(s, "UTC", NOW)
    assert list(summary["patient_id"]) == ["MRN-0002", "MRN-0003", "MRN-0001"]
    sick = summary.iloc[0]
    assert sick["day"] == 12
    assert sick["crs_grade"] == 2 and sick["iec_hs"] == "met" and sick["iec_hs_since_day"] == 11
    assert sick["ferritin"] == 5200 and sick["ferritin_trend"] == "↑"
    assert sick["ferritin_series"] == [900, 2000, 5200]
    assert sick["unack_severe"] == 1 and sick["unack_warning"] == 1
    assert summary["concern"].is_monotonic_decreasing


def test_patient_without_labs_today_is_marked_and_its_lab_age_given(engine, ward):
    with session_scope(engine) as s:
        summary = ward_summary(s, "UTC", NOW).set_index("patient_id")
    assert summary.loc["MRN-0003", "no_labs_today"]
    assert summary.loc["MRN-0003", "lab_age_h"] == pytest.approx(3 * 24 + 9)
    assert summary.loc["MRN-0003", "icaht_grade"] == 2
    assert not summary.loc["MRN-0001", "no_labs_today"]
    assert summary.loc["MRN-0001", "ferritin_trend"] == "↑"  # 380 -> 390
    assert summary.loc["MRN-0001", "fibrinogen_trend"] == "→"


def test_acknowledged_alerts_weigh_less_than_unacknowledged(engine, ward):
    with session_scope(engine) as s:
        before = ward_summary(s, "UTC", NOW).set_index("patient_id")["concern"]
        alert = s.exec(select(Alert).where(Alert.patient_pk == ward["calm"])).one()
        acknowledge(s, alert.id, "nurse", now=NOW)
        after = ward_summary(s, "UTC", NOW).set_index("patient_id")
    assert after.loc["MRN-0001", "concern"] < before["MRN-0001"]
    assert after.loc["MRN-0001", "unack_warning"] == 0


def test_filter_by_product_and_status(engine, ward):
    with session_scope(engine) as s:
        summary = ward_summary(s, "UTC", NOW)
    assert list(filter_summary(summary, products=["tisa-cel"])["patient_id"]) == ["MRN-0002"]
    assert list(filter_summary(summary, statuses=["No labs today"])["patient_id"]) == [
        "MRN-0003"]
    assert set(filter_summary(summary, statuses=["CRS", "ICAHT"])["patient_id"]) == {
        "MRN-0002", "MRN-0003"}


def test_trend_arrow_compares_with_the_previous_value():
    assert trend_arrow([]) == "" and trend_arrow([3]) == ""
    assert trend_arrow([1, 3]) == "↑" and trend_arrow([3, 1]) == "↓" and trend_arrow([2, 2]) == "→"


def test_changes_since_yesterday_lists_new_and_worse_alerts_only_after_the_cut(engine, ward):
    with session_scope(engine) as s:
        changes = changes_since(s, NOW - timedelta(hours=24), NOW)
    texts = set(changes["text"])
    assert "Worse: CRS grade 2" in texts and "New: Early ICAHT grade 2" in texts
    assert not any(t.startswith("New: CRS") for t in texts)  # fired 30 h ago
    assert not changes["text"].str.contains("MRN").any()


def test_freshness_reports_newest_data_and_last_evaluation(engine, ward):
    with session_scope(engine) as s:
        fresh = freshness(s, NOW, timedelta(hours=24))
        stale = freshness(s, NOW + timedelta(days=2), timedelta(hours=24))
    assert fresh.newest_data_at == NOW.replace(hour=6) and not fresh.is_stale
    assert stale.is_data_stale and stale.is_evaluation_stale


def test_inbox_sorts_most_severe_first_and_filters(engine, ward):
    with session_scope(engine) as s:
        inbox = alert_inbox(s)
        assert inbox.iloc[0]["rule_id"] == "iec_hs"
        assert "Hines" in inbox.iloc[0]["citation"]
        only = alert_inbox(s, InboxFilter(patient_ids=("MRN-0003",)))
        assert list(only["rule_id"]) == ["icaht_early"]
        severe = alert_inbox(s, InboxFilter(severities=("severe",)))
        assert set(severe["rule_id"]) == {"iec_hs"}
        alert_id = int(only.iloc[0]["id"])
        snooze(s, alert_id, "nurse", "recovering", NOW + timedelta(hours=4), now=NOW)
        snoozed = alert_inbox(s, InboxFilter(states=("snoozed",)))
    assert list(snoozed["id"]) == [alert_id]
    assert snoozed.iloc[0]["snooze_reason"] == "recovering"


def test_huddle_tiles_carry_no_identifier(engine, ward):
    with session_scope(engine) as s:
        tiles = huddle_tiles(s, "UTC", NOW)
    assert [t.fields["initials"] for t in tiles] == ["CD", "EF", "AB"]
    text = repr([(t.fields, t.alerts, t.changes) for t in tiles])
    assert "MRN" not in text


def test_masking_helpers():
    assert initials_only("j.-p. d") == "JPD"
    assert initials_only(None) == "?"
    assert scrub("seen in mrn-0001 today", ["MRN-0001"]) == "seen in ••• today"
