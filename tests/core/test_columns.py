"""core.store.columns: a query's columns become what pandas makes of the same rows."""

import math

import numpy as np
import pandas as pd
import pytest

from core.store.columns import inferred

NAN = math.nan
CASES = [  # (what, one column's values as the driver returns them)
    ("text with None gaps", ("ferritin", None, "crp")),
    ("text only", ("g/L", "mg/L")),
    ("empty text", ("", "x")),
    ("text with NaN gaps", ("a", NAN, "b")),
    ("nothing but gaps", (None, None)),
    ("whole numbers with gaps", (1, None, 3)),
    ("whole numbers", (1, 2)),
    ("decimals", (1.5, 2.0)),
    ("text and numbers", ("x", 1)),
    ("non-ASCII text", ("µmol/L", "×10⁹/L", None)),
]


@pytest.mark.parametrize("as_array", [False, True], ids=["tuple", "object-array"])
@pytest.mark.parametrize(("what", "values"), CASES, ids=[c[0] for c in CASES])
def test_a_column_is_what_pandas_infers_from_the_rows(what: str, values: tuple,
                                                      as_array: bool) -> None:
    """As a tuple, and as the object array fetch_columns makes of a column."""
    expected = pd.DataFrame.from_records([(v,) for v in values], columns=["c"])["c"]
    column = np.fromiter(values, dtype=object, count=len(values)) if as_array else values
    got = pd.Series(inferred(column), name="c")
    assert got.dtype == expected.dtype, what
    pd.testing.assert_series_equal(got, expected)
