"""A patient's course as the rules see it: plain frames on a "days after infusion" axis.

`Course` is the one input of the rules module (core/rules). It is built from the database by
core.repository.load_courses, or by hand in tests with `make_course`. Only `final` rows are
in it (superseded and entered-in-error rows never reach a rule).

Day numbers: `day` is fractional days since local midnight of the infusion date in the
ward's time zone, so `floor(day)` is the "day N" a nurse reads on the ward (day 0 = infusion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

LAB_COLUMNS = [
    "lab_id", "analyte", "day", "collected_at", "value", "unit", "qualifier",
    "ref_low", "ref_high", "original_value", "original_unit", "verified",
]
OBS_COLUMNS = ["kind", "day", "observed_at", "value_num", "value_text", "unit"]
EPISODE_COLUMNS = ["kind", "grade", "onset_day", "resolved_day", "origin"]
TREATMENT_COLUMNS = ["drug", "day", "dose", "dose_unit", "route"]
EVENT_COLUMNS = ["kind", "day"]
MISSING_COLUMNS = ["analyte", "day", "reason"]


@dataclass(frozen=True)
class PatientInfo:
    patient_id: str
    infusion_date: date
    product: str = ""
    lymphodepletion_start: date | None = None
    birth_year: int | None = None
    sex: str | None = None
    weight_kg: float | None = None
    status: str = "active"
    initials: str | None = None
    bed: str | None = None

    def age_at(self, when: date) -> int | None:
        return None if self.birth_year is None else when.year - self.birth_year

    @property
    def lymphodepletion_day(self) -> float | None:
        if self.lymphodepletion_start is None:
            return None
        return float((self.lymphodepletion_start - self.infusion_date).days)


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


@dataclass(frozen=True)
class Course:
    """Everything known about one patient up to `as_of_day` (inclusive)."""

    patient: PatientInfo
    labs: pd.DataFrame = field(default_factory=lambda: _empty(LAB_COLUMNS))
    observations: pd.DataFrame = field(default_factory=lambda: _empty(OBS_COLUMNS))
    episodes: pd.DataFrame = field(default_factory=lambda: _empty(EPISODE_COLUMNS))
    treatments: pd.DataFrame = field(default_factory=lambda: _empty(TREATMENT_COLUMNS))
    events: pd.DataFrame = field(default_factory=lambda: _empty(EVENT_COLUMNS))
    missing: pd.DataFrame = field(default_factory=lambda: _empty(MISSING_COLUMNS))
    as_of_day: float = math.inf
    tz: str = "UTC"

    def until(self, day: float) -> Course:
        """The course as it was known at the end of `day` (what a replay sees that day)."""
        end = day
        eps = self.episodes[self.episodes["onset_day"] <= end].copy()
        if len(eps):
            eps.loc[eps["resolved_day"] > end, "resolved_day"] = float("nan")
        return replace(
            self,
            labs=self.labs[self.labs["day"] <= end],
            observations=self.observations[self.observations["day"] <= end],
            episodes=eps,
            treatments=self.treatments[self.treatments["day"] <= end],
            events=self.events[self.events["day"] <= end],
            missing=self.missing[self.missing["day"] <= end],
            as_of_day=end,
        )

    def series(self, analyte: str) -> pd.DataFrame:
        """The labs of one analyte, sorted by time."""
        return self.labs[self.labs["analyte"] == analyte].sort_values("day")


def day_of(when: datetime, infusion_date: date, tz: ZoneInfo) -> float:
    """Fractional days since local midnight of the infusion date."""
    start = datetime.combine(infusion_date, time(0), tzinfo=tz)
    return (when.astimezone(tz) - start).total_seconds() / 86400.0


def at_day(day: float, infusion_date: date, tz: ZoneInfo) -> datetime:
    """The UTC instant of `day` (fractional) after local midnight of the infusion date."""
    start = datetime.combine(infusion_date, time(0), tzinfo=tz)
    local = start + timedelta(days=day)
    return local.astimezone(UTC)


def days_of(times: pd.Series, infusion_date: date, tz: ZoneInfo) -> pd.Series:
    """Vectorised day_of over a column of UTC timestamps."""
    start = pd.Timestamp(datetime.combine(infusion_date, time(0)), tz=tz)
    ts = pd.to_datetime(times, utc=True)
    return (ts - start).dt.total_seconds() / 86400.0


def make_course(
    infusion_date: date = date(2026, 1, 1),
    labs: list[tuple] | None = None,
    observations: list[tuple] | None = None,
    episodes: list[tuple] | None = None,
    treatments: list[tuple] | None = None,
    events: list[tuple] | None = None,
    missing: list[tuple] | None = None,
    as_of_day: float = math.inf,
    **patient: Any,
) -> Course:
    """A course from short tuples, for tests and examples.

    labs: (analyte, day, value[, ref_low, ref_high[, qualifier]]) in canonical units
    observations: (kind, day, value) with value a number or a choice string
    episodes: (kind, grade, onset_day, resolved_day or None[, origin])
    treatments: (drug, day[, dose, dose_unit])
    events: (kind, day); missing: (analyte, day, reason)
    """
    from core.vocabulary.units import ANALYTES

    info = PatientInfo(patient_id=str(patient.pop("patient_id", "T1")),
                       infusion_date=infusion_date, **patient)
    tz = ZoneInfo("UTC")
    lab_rows = []
    for i, row in enumerate(labs or []):
        analyte, day, value, *rest = row
        a = ANALYTES[analyte]
        ref_low = rest[0] if len(rest) > 0 else a.ref_low
        ref_high = rest[1] if len(rest) > 1 else a.ref_high
        qualifier = rest[2] if len(rest) > 2 else None
        lab_rows.append({
            "lab_id": i + 1, "analyte": analyte, "day": float(day),
            "collected_at": at_day(float(day), infusion_date, tz), "value": float(value),
            "unit": a.unit, "qualifier": qualifier, "ref_low": ref_low, "ref_high": ref_high,
            "original_value": f"{value:g}", "original_unit": a.unit, "verified": True,
        })
    obs_rows = []
    for kind, day, value in observations or []:
        num = None if isinstance(value, str) else float(value)
        obs_rows.append({
            "kind": kind, "day": float(day),
            "observed_at": at_day(float(day), infusion_date, tz),
            "value_num": num, "value_text": value if isinstance(value, str) else None,
            "unit": None,
        })
    ep_rows = []
    for row in episodes or []:
        kind, grade, onset, resolved, *rest = row
        ep_rows.append({
            "kind": kind, "grade": grade, "onset_day": float(onset),
            "resolved_day": float("nan") if resolved is None else float(resolved),
            "origin": rest[0] if rest else "documented",
        })
    tr_rows = []
    for row in treatments or []:
        drug, day, *rest = row
        tr_rows.append({"drug": drug, "day": float(day),
                        "dose": rest[0] if rest else None,
                        "dose_unit": rest[1] if len(rest) > 1 else None, "route": None})

    def frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=columns) if rows else _empty(columns)

    course = Course(
        patient=info,
        labs=frame(lab_rows, LAB_COLUMNS),
        observations=frame(obs_rows, OBS_COLUMNS),
        episodes=frame(ep_rows, EPISODE_COLUMNS),
        treatments=frame(tr_rows, TREATMENT_COLUMNS),
        events=frame([{"kind": k, "day": float(d)} for k, d in events or []], EVENT_COLUMNS),
        missing=frame([{"analyte": a, "day": float(d), "reason": r}
                       for a, d, r in missing or []], MISSING_COLUMNS),
    )
    return course.until(as_of_day) if math.isfinite(as_of_day) else course
