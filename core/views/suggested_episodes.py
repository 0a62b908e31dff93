"""Suggested CRS / ICANS / IEC-HS episode windows from replayed findings.

A suggestion is a stretch of days on which the rule was met (its episode_key), from the day it
began (since_day) to the first later day it was found not met (resolved_day; None while it
lasts). Documented episodes always win: no suggestion is made that overlaps a documented
episode of the same kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from core.rules.base import Finding, Status
from core.rules.catalog import all_specs, episode_kinds
from core.rules.engine import Overrides, replay_course
from core.vocabulary.course import Course


def _overlaps(a0: float, a1: float | None, b0: float, b1: float | None) -> bool:
    a_end = math.inf if a1 is None else a1
    b_end = math.inf if b1 is None else b1
    return a0 <= b_end and b0 <= a_end


def suggested_for(course: Course, overrides: Overrides | None = None) -> list[dict]:
    """The course's suggested episode windows, from a replay of the episode rules alone
    (Rule.episode_kind; with the rules they read): the other rules' findings on every day
    would be made for nothing."""
    kinds = episode_kinds()
    specs = [s for s in all_specs() if s.rule.id in kinds]
    return suggest_episodes(course, replay_course(course, specs, overrides))


def suggest_episodes(course: Course,
                     findings_by_day: Sequence[tuple[int, Sequence[Finding]]]) -> list[dict]:
    """Suggested episode windows {kind, grade, onset_day, resolved_day, origin, rule}."""
    kinds = episode_kinds()  # Rule.episode_kind: CRS, ICANS, IEC-HS
    open_: dict[str, dict] = {}
    out: list[dict] = []
    for day, findings in sorted(findings_by_day, key=lambda x: x[0]):
        for f in findings:
            kind = kinds.get(f.rule)
            if kind is None:
                continue
            cur = open_.get(f.rule)
            if f.status is Status.MET:
                onset = f.since_day if f.since_day is not None else day
                if cur is not None and cur["key"] != (f.episode_key or onset):
                    out.append(cur)
                    cur = None
                if cur is None:
                    cur = open_[f.rule] = {"kind": kind, "grade": f.grade,
                                           "onset_day": onset, "resolved_day": None,
                                           "origin": "suggested", "rule": f.rule,
                                           "key": f.episode_key or onset}
                if f.grade is not None:
                    cur["grade"] = max(cur["grade"] or 0, f.grade)
            elif f.status is Status.NOT_MET and cur is not None:
                cur["resolved_day"] = day
                out.append(open_.pop(f.rule))
    out.extend(open_.values())
    ep = course.episodes
    documented = [(str(k), float(onset), None if resolved != resolved else float(resolved))
                  for k, onset, resolved, origin in zip(
                      ep["kind"], pd.to_numeric(ep["onset_day"], errors="coerce"),
                      pd.to_numeric(ep["resolved_day"], errors="coerce"), ep["origin"],
                      strict=True)
                  if pd.isna(origin) or origin == "documented"]
    kept = []
    for s in sorted(out, key=lambda s: (s["onset_day"], s["kind"])):
        if any(k == s["kind"] and _overlaps(s["onset_day"], s["resolved_day"], o, r)
               for k, o, r in documented):
            continue
        s.pop("key")
        kept.append(s)
    return kept
