"""The huddle wall: one masked tile per active patient, most concerning first.

A tile shows bed, initials, day and clinical state, never a name, study ID or MRN: every
identifier the store holds is masked wherever it could appear in a tile's text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from core.store.models import Patient, as_utc, utcnow
from core.views.changes import change_lines, changes_since
from core.views.ward import top_alerts, ward_summary

MASK = "•••"


def initials_only(initials: str | None) -> str:
    """Up to three letters of the stored initials, or "?"; never a name or an ID."""
    letters = re.sub(r"[^A-Za-z]", "", initials or "").upper()[:3]
    return letters or "?"


def scrub(text: str, identifiers: Iterable[str]) -> str:
    """`text` with every given identifier (study ID, MRN) replaced by a mask."""
    for ident in sorted({i for i in identifiers if i}, key=len, reverse=True):
        text = re.sub(re.escape(ident), MASK, text, flags=re.IGNORECASE)
    return text


HUDDLE_FIELDS = [
    "bed", "initials", "day", "crs_grade", "icans_grade", "iec_hs", "iec_hs_since_day", "hlh",
    "icaht_grade", "ticaht_grade", "ferritin", "ferritin_trend", "ferritin_series",
    "fibrinogen", "fibrinogen_trend", "fibrinogen_series", "unack_severe", "unack_warning",
    "unack_info", "escalated", "no_labs_today", "lab_age_h", "concern",
]


@dataclass(frozen=True)
class HuddleTile:
    """What one huddle tile may show: bed, initials, day and clinical state; no identifiers."""

    fields: dict
    alerts: list[str]
    changes: list[str]


def huddle_tiles(session: Session, tz: str, now: datetime | None = None,
                 ward: str | None = None,
                 since: timedelta = timedelta(hours=24)) -> list[HuddleTile]:
    """One masked tile per active patient, most concerning first."""
    now = as_utc(now) or utcnow()
    summary = ward_summary(session, tz, now, ward)
    if summary.empty:
        return []
    pks = [int(pk) for pk in summary["patient_pk"]]
    alerts = top_alerts(session, pks, limit=2)
    changes = change_lines(changes_since(session, now - since, now, pks), limit=2)
    every_id = list(session.scalars(select(col(Patient.patient_id))))
    tiles = []
    for row in summary.to_dict("records"):
        pk = int(row["patient_pk"])
        shown = {k: row[k] for k in HUDDLE_FIELDS}
        shown["initials"] = initials_only(row["initials"])
        shown["bed"] = scrub(row["bed"], every_id) or "–"
        tiles.append(HuddleTile(
            fields=shown,
            alerts=[scrub(s, every_id) for s in alerts.get(pk, [])],
            changes=[scrub(s, every_id) for s in changes.get(pk, [])],
        ))
    return tiles
