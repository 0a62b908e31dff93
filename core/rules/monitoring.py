"""Bedside inputs of the graded syndromes (CRS, ICANS): what was charted on a ward day, and
when a rule stops asking for an input [DESIGN].

CRS and ICANS are graded from bedside observations charted during the monitoring phase: the
latest observation of each input charted on the graded ward day (`charted_today`). Once that
phase is over (outpatients after discharge from the unit, typically after day 30), the
inputs are no longer charted and a daily "log today's ..." prompt is noise. A prompt for an
input is dropped when that input was charted before but not in the last `monitoring_gap_days`
days; an input never charted is still asked for (a new patient whose vitals are not in yet).
Charting the input again brings the prompt back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from core.rules.base import Evidence, Threshold, Thresholds
from core.rules.frames import Ward
from core.rules.series import take
from core.rules.tables import NONE

MONITORING_GAP = Threshold(
    "monitoring_gap_days", 3, "days", Evidence.DESIGN,
    "stop asking for an input not charted for more than this many days (end of the "
    "bedside monitoring phase); never changes a grade", ">", operational=True)


class Charted(NamedTuple):
    """One input on each grid row: the latest observation of it charted on the row's own
    ward day and known at the row's end (`pos` in ward.observations, NONE if none)."""

    pos: np.ndarray
    num: np.ndarray  # its numeric value (NaN: none)
    text: np.ndarray  # its text value (None: none)
    last_day: np.ndarray  # the day of its latest observation known then, any day (NaN: none)

    @property
    def today(self) -> np.ndarray:
        return self.pos != NONE

    @property
    def yes(self) -> np.ndarray:
        """Charted today as yes (a numeric value of 1 or more)."""
        return np.asarray(self.num >= 1)


def charted_today(ward: Ward, kinds: Sequence[str]) -> dict[str, Charted]:
    """Each input of `kinds`, as charted on each grid row's own ward day (from its start to
    its end), read from its latest row known at the row's end."""
    obs = ward.observations
    out = {}
    for kind in kinds:
        at = ward.latest_observation(kind)
        last_day = take(obs.day, at, np.nan)
        pos = np.where(last_day >= ward.days["day"], at, NONE)
        out[kind] = Charted(pos, take(obs["value_num"], pos, np.nan),
                            take(obs.get("value_text"), pos, None), last_day)
    return out


def dropped(ward: Ward, charted: Mapping[str, Charted],
            prompts: Mapping[str, Sequence[str]], t: Thresholds) -> dict[str, np.ndarray]:
    """Per prompt answered by observation kinds (`prompts`: each prompt's kinds), the judged
    column `dropped_column(prompt)`: True on the grid rows where the prompt is dropped, the
    input charted before but its last charting day (floored) more than the rule's
    MONITORING_GAP days before the row's day. `charted`: each kind's charted_today."""
    gap_days = t[MONITORING_GAP.key]
    out = {}
    for prompt, kinds in prompts.items():
        if kinds:  # a prompt no observation answers (the birth year) is never dropped
            last = np.fmax.reduce([charted[k].last_day for k in kinds])
            out[dropped_column(prompt)] = np.floor(last) < ward.days["day"] - gap_days
    return out


def dropped_column(prompt: str) -> str:
    """The judged column saying where `prompt` is dropped (see `dropped`)."""
    return f"dropped: {prompt}"


def prompts_shown(row: Mapping[str, Any], prompts: Mapping[str, Sequence[str]],
                  graded: bool) -> tuple[list[str], dict[str, Any]]:
    """The missing-input prompts a judged row shows (those of `prompts` its columns raise),
    and its extra fields. A row without a grade drops the prompts it judged dropped; left
    with none but prompts no observation answers (the birth year), it is outside the
    monitoring window: no prompts, and extra outside_monitoring_window."""
    missing = [m for m in prompts if row[m]]
    if graded or not missing:
        return missing, {}
    missing = [m for m in missing if not row.get(dropped_column(m), False)]
    if all(not prompts[m] for m in missing):
        return [], {"outside_monitoring_window": True}
    return missing, {}
