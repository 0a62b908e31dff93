"""load_courses: one read per table, final rows only, days in the ward's zone."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from core.store.db import session_scope
from core.store.lab_reads import read_lab_frame
from core.store.loading import left_out, load_courses, load_patient_courses
from core.store.models import (
    CourseEvent,
    Episode,
    LabResult,
    MissingLab,
    Observation,
    Patient,
    RecordStatus,
    Treatment,
)
from core.vocabulary.course import (
    EPISODE_COLUMNS,
    EVENT_COLUMNS,
    LAB_COLUMNS,
    MISSING_COLUMNS,
    OBS_COLUMNS,
    TREATMENT_COLUMNS,
    days_of,
)

TZ = "Europe/Berlin"
INFUSION = date(2026, 3, 27)  # the clocks go forward in Berlin on 29 March 2026


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def lab(pk: int, analyte: str, at: datetime, value: float, **kw: object) -> LabResult:
    return LabResult(patient_pk=pk, analyte=analyte, collected_at=at, value=value,
                     unit=kw.pop("unit", "ng/mL"), original_value=f"{value:g}",
                     original_unit="ng/mL", **kw)


@pytest.fixture
def ward(add):  # type: ignore[no-untyped-def]
    """Two active patients and a discharged one, with rows in every clinical table."""
    p1, p2, p3 = add(
        Patient(patient_id="P1", product="axi-cel", infusion_date=INFUSION, bed="3",
                initials="AB", birth_year=1960),
        Patient(patient_id="P2", product="tisa-cel", infusion_date=date(2026, 3, 20)),
        Patient(patient_id="P3", product="cilta-cel", infusion_date=INFUSION,
                status="discharged"),
    )
    add(
        lab(p1.id, "ferritin", utc(2026, 3, 30, 6), 900.0, ref_low=30, ref_high=400,
            verified_by="nurse", verified_at=utc(2026, 3, 30, 9)),
        lab(p1.id, "ferritin", utc(2026, 3, 28, 6), 500.0),
        lab(p1.id, "crp", utc(2026, 3, 28, 6), 50.0, unit="mg/L", qualifier=">"),
        lab(p1.id, "ferritin", utc(2026, 3, 29, 6), 123456.0, status=RecordStatus.SUPERSEDED),
        lab(p1.id, "ferritin", utc(2026, 3, 29, 7), 99999.0,
            status=RecordStatus.ENTERED_IN_ERROR),
        lab(p2.id, "ferritin", utc(2026, 3, 21, 6), 300.0),
        lab(p3.id, "ferritin", utc(2026, 3, 28, 6), 300.0),
        Observation(patient_pk=p1.id, kind="temperature", observed_at=utc(2026, 3, 28, 20),
                    value_num=38.6, unit="degC"),
        Observation(patient_pk=p1.id, kind="oxygen_device", observed_at=utc(2026, 3, 29, 1),
                    value_text="nasal_cannula"),
        Episode(patient_pk=p1.id, kind="CRS", grade=2, onset=utc(2026, 3, 28, 20),
                resolved=utc(2026, 3, 31, 8)),
        Episode(patient_pk=p1.id, kind="ICANS", grade=1, onset=utc(2026, 3, 30, 8)),
        Episode(patient_pk=p1.id, kind="IEC-HS", grade=3, onset=utc(2026, 3, 30, 8),
                status=RecordStatus.ENTERED_IN_ERROR),
        Treatment(patient_pk=p1.id, drug="tocilizumab", given_at=utc(2026, 3, 28, 22),
                  dose=8.0, dose_unit="mg/kg", route="iv"),
        CourseEvent(patient_pk=p1.id, kind="last_followup", at=utc(2026, 4, 20, 10)),
        MissingLab(patient_pk=p1.id, analyte="fibrinogen", day=2, reason="haemolysed"),
    )
    return p1, p2, p3


def test_load_courses_reads_active_patients_sorted_with_their_info(engine, ward) -> None:
    with session_scope(engine) as s:
        courses = load_courses(s, TZ)
    assert [c.patient.patient_id for c in courses] == ["P1", "P2"]
    info = courses[0].patient
    assert (info.product, info.bed, info.initials, info.birth_year, info.infusion_date) == (
        "axi-cel", "3", "AB", 1960, INFUSION)
    assert courses[0].tz == TZ and math.isinf(courses[0].as_of_day)


def test_load_courses_includes_inactive_patients_when_asked(engine, ward) -> None:
    with session_scope(engine) as s:
        courses = load_courses(s, TZ, patient_ids=["P3", "P2"], active_only=False)
    assert [c.patient.patient_id for c in courses] == ["P2", "P3"]
    assert courses[1].patient.status == "discharged"


def test_frames_have_exactly_the_course_columns(engine, ward) -> None:
    with session_scope(engine) as s:
        (c,) = load_courses(s, TZ, patient_ids=["P1"])
    assert list(c.labs.columns) == LAB_COLUMNS
    assert list(c.observations.columns) == OBS_COLUMNS
    assert list(c.episodes.columns) == EPISODE_COLUMNS
    assert list(c.treatments.columns) == TREATMENT_COLUMNS
    assert list(c.events.columns) == EVENT_COLUMNS
    assert list(c.missing.columns) == MISSING_COLUMNS


def test_only_final_rows_reach_the_course(engine, ward) -> None:
    with session_scope(engine) as s:
        (c,) = load_courses(s, TZ, patient_ids=["P1"])
    assert sorted(c.labs["value"]) == [50.0, 500.0, 900.0]
    assert sorted(c.episodes["kind"]) == ["CRS", "ICANS"]


def test_days_are_computed_in_the_ward_zone_like_days_of(engine, ward) -> None:
    with session_scope(engine) as s:
        (c,) = load_courses(s, TZ, patient_ids=["P1"])
    ferritin = c.series("ferritin")
    expected = days_of(ferritin["collected_at"], INFUSION, ZoneInfo(TZ))
    pd.testing.assert_series_equal(ferritin["day"], expected, check_names=False)
    # 28 March 06:00 UTC is 07:00 CET: one day and seven hours after local midnight of day 0
    assert ferritin["day"].tolist() == pytest.approx([1 + 7 / 24, 3 + 7 / 24])
    assert str(ferritin["collected_at"].dt.tz) == "UTC"


def test_labs_carry_original_values_qualifier_and_verified(engine, ward) -> None:
    with session_scope(engine) as s:
        (c,) = load_courses(s, TZ, patient_ids=["P1"])
    rows = c.labs.set_index("value")
    assert bool(rows.loc[900.0, "verified"]) is True
    assert bool(rows.loc[500.0, "verified"]) is False
    assert rows.loc[50.0, "qualifier"] == ">"
    assert rows.loc[500.0, "qualifier"] is None
    assert (rows.loc[900.0, "ref_low"], rows.loc[900.0, "ref_high"]) == (30.0, 400.0)
    assert math.isnan(rows.loc[500.0, "ref_high"])
    assert rows.loc[900.0, "original_value"] == "900"
    assert c.labs["day"].is_monotonic_increasing


def test_episodes_have_onset_and_resolved_days(engine, ward) -> None:
    with session_scope(engine) as s:
        (c,) = load_courses(s, TZ, patient_ids=["P1"])
    eps = c.episodes.set_index("kind")
    assert eps.loc["CRS", "onset_day"] == pytest.approx(1 + 21 / 24)
    # 31 March 08:00 UTC is 10:00 CEST (after the change): 4 days 9 h after day 0 midnight CET
    assert eps.loc["CRS", "resolved_day"] == pytest.approx(4 + 9 / 24)
    assert math.isnan(eps.loc["ICANS", "resolved_day"])
    assert eps.loc["CRS", "origin"] == "documented" and eps.loc["CRS", "grade"] == 2


def test_other_frames(engine, ward) -> None:
    with session_scope(engine) as s:
        (c,) = load_courses(s, TZ, patient_ids=["P1"])
    obs = c.observations.set_index("kind")
    assert obs.loc["temperature", "value_num"] == 38.6
    assert obs.loc["oxygen_device", "value_text"] == "nasal_cannula"
    assert c.treatments.iloc[0][["drug", "dose", "dose_unit", "route"]].tolist() == [
        "tocilizumab", 8.0, "mg/kg", "iv"]
    assert c.events["kind"].tolist() == ["last_followup"]
    assert c.missing.iloc[0].tolist() == ["fibrinogen", 2.0, "haemolysed"]


def test_a_patient_without_rows_gets_empty_frames(engine, ward) -> None:
    with session_scope(engine) as s:
        (c,) = load_courses(s, TZ, patient_ids=["P2"])
    assert len(c.labs) == 1
    assert c.observations.empty and list(c.observations.columns) == OBS_COLUMNS
    assert c.episodes.empty and c.missing.empty


def test_as_of_cuts_the_course_and_reopens_later_resolved_episodes(engine, ward) -> None:
    with session_scope(engine) as s:
        (c,) = load_courses(s, TZ, patient_ids=["P1"], as_of=utc(2026, 3, 29, 12))
    assert c.labs["value"].tolist() == [500.0, 50.0]
    assert c.episodes["kind"].tolist() == ["CRS"]
    assert math.isnan(c.episodes.iloc[0]["resolved_day"])
    assert c.as_of_day == pytest.approx(2 + 14 / 24)  # 14:00 CEST on 29 March
    assert c.events.empty and c.missing.iloc[0]["day"] == 2.0


def test_load_courses_issues_one_query_per_table(engine, ward) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope(engine) as s:
            load_courses(s, TZ, active_only=False)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 7  # patients + six clinical tables, whatever the patient count


def test_read_lab_frame_is_the_raw_final_lab_read(engine, ward) -> None:
    with session_scope(engine) as s:
        every = read_lab_frame(s)
        one = read_lab_frame(s, patient_ids=["P1"])
    assert len(every) == 5 and len(one) == 3
    assert {"patient_pk", "lab_id", "collected_at", "verified_at"} <= set(every.columns)
    assert str(every["collected_at"].dt.tz) == "UTC"


@pytest.mark.parametrize("read", ["rules", "cited", "statuses"])
def test_a_read_for_the_rules_leaves_out_only_what_it_does_not_need(engine, ward, read) -> None:
    with session_scope(engine) as s:
        (full,) = load_courses(s, TZ, patient_ids=["P1"])
        ((_, lean),) = load_patient_courses(s, TZ, ["P1"], read=read)
    for name in ("labs", "observations", "treatments"):
        whole = getattr(full, name)
        assert len(whole), name  # the fixture has rows in every table with columns left out
        assert list(getattr(lean, name).columns) == [
            c for c in whole.columns if c not in left_out(read, name)], name
    assert "unit" in left_out(read, "labs")
    assert ("lab_id" in left_out(read, "labs")) == (read != "cited")  # cited: by their ids
    assert ("qualifier" in left_out(read, "labs")) == (read != "rules")
    for name in ("labs", "observations", "episodes", "treatments", "events", "missing"):
        whole = getattr(full, name)
        kept = getattr(lean, name)
        pd.testing.assert_frame_equal(kept, whole[list(kept.columns)], check_dtype=True)
