"""Render helpers for the data-capture pages (entry form sections, error captions).

Only widgets and formatting: every check and every write is in core (core.capture.entry,
core.capture.corrections, core.capture.importing, core.capture.fhir).
"""

from __future__ import annotations

import streamlit as st

from core.vocabulary.observations import OBSERVATION_KINDS
from core.vocabulary.units import ANALYTES, accepted_units

# the entry form's lab columns, in the order a lab report lists them (tab order: down a
# column, then the next column)
LAB_COLUMNS = (
    ("Blood counts", ("wbc", "anc", "alc", "hemoglobin", "platelets")),
    ("Inflammation", ("ferritin", "crp", "il6", "triglycerides", "scd25")),
    ("Liver and kidney", ("ast", "alt", "bilirubin", "ldh", "creatinine")),
    ("Coagulation", ("fibrinogen", "ddimer", "inr")),
)
YES_NO = ("no", "yes")


def unit_options(code: str) -> list[str]:
    a = ANALYTES[code]
    opts = accepted_units(a)
    return opts if a.unit in opts else [a.unit, *opts]


def field_errors(errors: dict[str, list[str]], item: str) -> None:
    """The last save's messages for one field, in red under it."""
    for msg in errors.get(item, []):
        st.caption(f":red[{msg}]")


def obs_label(code: str) -> str:
    k = OBSERVATION_KINDS[code]
    return k.label + (f" ({k.unit})" if k.unit and k.unit not in ("grade", "points") else "")


def choice(code: str, key: str, options: tuple[str, ...] | None = None) -> None:
    opts = list(options or OBSERVATION_KINDS[code].choices)
    st.selectbox(obs_label(code), opts, index=None, key=key, placeholder="not recorded",
                 format_func=lambda v: v.replace("_", " "))
