"""Units through UCUM: every spelling the hand-written table used to list converts by the
same factor, other UCUM units of the same dimension convert, and the wrong dimension does not.
"""

from __future__ import annotations

import pytest

from core.vocabulary.units import ANALYTES, accepted_units, conversion_factor, ucum_factor

# (analyte, spelling, factor): the entries core/vocabulary/units.py listed by hand before UCUM, now
# converted by UCUM (the molar factors of criteria §9 and lab shorthand stay in the table)
FORMERLY_HAND_WRITTEN = [
    ('ferritin', 'ng/ml', 1.0),
    ('ferritin', 'ug/l', 1.0),
    ('ferritin', 'ug/dl', 10.0),
    ('fibrinogen', 'mg/dl', 1.0),
    ('fibrinogen', 'g/l', 100.0),
    ('ast', 'u/l', 1.0),
    ('ast', 'ukat/l', 60.0),
    ('alt', 'u/l', 1.0),
    ('alt', 'ukat/l', 60.0),
    ('bilirubin', 'mg/dl', 1.0),
    ('ldh', 'u/l', 1.0),
    ('ldh', 'ukat/l', 60.0),
    ('triglycerides', 'mg/dl', 1.0),
    ('crp', 'mg/l', 1.0),
    ('crp', 'mg/dl', 10.0),
    ('il6', 'pg/ml', 1.0),
    ('il6', 'ng/l', 1.0),
    ('creatinine', 'mg/dl', 1.0),
    ('wbc', '10^9/l', 1.0),
    ('wbc', '10^3/ul', 1.0),
    ('wbc', '10^3/mm3', 1.0),
    ('wbc', '/ul', 0.001),
    ('wbc', '/mm3', 0.001),
    ('anc', '10^9/l', 1.0),
    ('anc', '10^3/ul', 1.0),
    ('anc', '10^3/mm3', 1.0),
    ('anc', '/ul', 0.001),
    ('anc', '/mm3', 0.001),
    ('alc', '10^9/l', 1.0),
    ('alc', '10^3/ul', 1.0),
    ('alc', '10^3/mm3', 1.0),
    ('alc', '/ul', 0.001),
    ('alc', '/mm3', 0.001),
    ('hemoglobin', 'g/dl', 1.0),
    ('hemoglobin', 'g/l', 0.1),
    ('platelets', '10^9/l', 1.0),
    ('platelets', '10^3/ul', 1.0),
    ('platelets', '10^3/mm3', 1.0),
    ('platelets', '/ul', 0.001),
    ('platelets', '/mm3', 0.001),
    ('ddimer', 'mg/l', 1.0),
    ('ddimer', 'mg/l{feu}', 1.0),
    ('ddimer', 'ug/ml', 1.0),
    ('ddimer', 'ng/ml', 0.001),
    ('ddimer', 'ug/l', 0.001),
]


@pytest.mark.parametrize(("analyte", "spelling", "factor"), FORMERLY_HAND_WRITTEN)
def test_ucum_gives_the_factor_the_table_gave(analyte: str, spelling: str,
                                              factor: float) -> None:
    assert spelling not in ANALYTES[analyte].units  # really through UCUM now
    assert conversion_factor(ANALYTES[analyte], spelling) == factor


@pytest.mark.parametrize(("analyte", "spelling", "factor"), [
    ("ferritin", "ng/mL", 1.0),
    ("ferritin", "mg/L", 1000.0),  # any UCUM mass concentration, not only the listed ones
    ("fibrinogen", "MG/DL", 1.0),  # capitals from an older lab system
    ("fibrinogen", "g/dL", 1000.0),
    ("hemoglobin", "mg/mL", 0.1),
    ("platelets", "10*9/L", 1.0),
    ("platelets", "x10^9/L", 1.0),
    ("platelets", "10*6/mL", 1.0),
    ("platelets", "/nL", 1.0),
    ("ast", "U/l", 1.0),
    ("ast", "u/L", 1.0),  # a lower-case u is the enzyme unit, never daltons
    ("ast", "nkat/L", 0.06),
    ("ddimer", "mg/L{FEU}", 1.0),
    ("ddimer", "mg/l FEU", 1.0),
])
def test_ucum_units_convert(analyte: str, spelling: str, factor: float) -> None:
    assert conversion_factor(ANALYTES[analyte], spelling) == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize(("analyte", "spelling"), [
    ("ferritin", "mmol/L"),  # a substance amount needs a molar mass: only the table has one
    ("fibrinogen", "u/l"),  # not daltons per litre
    ("ast", "mg/dL"),
    ("platelets", "g/L"),
    ("inr", "s"),  # INR is never derived from seconds (criteria §9)
    ("hemoglobin", "furlongs"),
    ("creatinine", ""),
])
def test_other_dimensions_refused(analyte: str, spelling: str) -> None:
    assert conversion_factor(ANALYTES[analyte], spelling) is None


def test_canonical_units_are_ucum() -> None:
    for analyte in ANALYTES.values():
        assert ucum_factor(analyte.ucum, analyte.ucum) == 1.0 or analyte.code == "inr"


@pytest.mark.parametrize("analyte", list(ANALYTES))
def test_every_listed_unit_converts_back(analyte: str) -> None:
    a = ANALYTES[analyte]
    shown = accepted_units(a)
    assert shown and all(conversion_factor(a, u) is not None for u in shown)
