"""Observations stored before their content hash covered the value.

Until the observation value key was fixed (validate.kinds.observation_value_keys), every
observation's key was missing, so every stored observation carries the same content hash,
LEGACY_OBSERVATION_CONTENT. A re-import cannot tell from that hash whether the value is the
same: `same_as_legacy` compares such rows with the stored row's values instead (as the HL7
receiver does), so re-importing an identical observation still adds nothing and a different
value is still refused.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session, col

from core.capture.importing.writing import _key_hash
from core.store.models import Observation

LEGACY_OBSERVATION_CONTENT = _key_hash("observations", None)
_SAME_NUMBER = 1e-9  # as a lab value is rounded in its key, and as HL7's comparison allows


def same_as_legacy(session: Session, kind: str, prepared: pd.DataFrame,
                   differs: pd.Series) -> pd.Series:
    """Of the rows in `differs` (stored under their `_row_key` with another content hash),
    those whose stored row has the old-form hash and holds the same value: not a conflict.

    `prepared`: an observations frame from `prepare_observations` with `_row_key` set."""
    out = pd.Series(False, index=prepared.index)
    if kind != "observations" or not differs.any():
        return out
    keys = prepared.loc[differs, "_row_key"].tolist()
    stored: dict[str, tuple[float | None, str | None]] = {}
    obs = Observation
    for i in range(0, len(keys), 900):
        for rk, num, said in session.execute(
            select(col(obs.row_key), col(obs.value_num), col(obs.value_text)).where(
                col(obs.row_key).in_(keys[i:i + 900]),
                col(obs.content_hash) == LEGACY_OBSERVATION_CONTENT)):
            stored[rk] = (num, said)
    if not stored:
        return out
    for idx in differs[differs].index:
        old = stored.get(prepared.at[idx, "_row_key"])
        if old is not None:
            out[idx] = _same(old, prepared.at[idx, "value_num"], prepared.at[idx, "value_text"])
    return out


def _same(old: tuple[float | None, str | None], num: Any, said: Any) -> bool:
    old_num, old_text = old
    new_num = None if num is None or (isinstance(num, float) and math.isnan(num)) else num
    new_text = said if isinstance(said, str) else None
    if (old_num is None) != (new_num is None) or (old_text or None) != (new_text or None):
        return False
    if old_num is None or new_num is None:
        return True
    return abs(float(old_num) - float(new_num)) < _SAME_NUMBER
