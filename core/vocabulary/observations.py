"""Bedside observation kinds and treatment drugs (criteria §12.2), with value parsing.

An observation's value is stored as `value_num` (numbers; yes/no as 1/0) or `value_text`
(one of a closed set of choices). Plausibility ranges here are data-entry limits [DESIGN],
not clinical thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ValueType(StrEnum):
    NUMBER = "number"
    YESNO = "yes/no"
    CHOICE = "choice"


@dataclass(frozen=True)
class ObservationKind:
    code: str
    label: str
    type: ValueType
    unit: str | None = None
    low: float | None = None  # inclusive data-entry limits [DESIGN]
    high: float | None = None
    choices: tuple[str, ...] = ()
    integer: bool = False
    needed_by: str = ""


OXYGEN_DEVICES = (
    "none", "low_flow_nc", "blow_by", "high_flow_nc", "facemask", "non_rebreather",
    "venturi", "cpap", "bipap", "ventilator",
)
CONSCIOUSNESS = ("spontaneous", "voice", "tactile", "unarousable")

OBSERVATION_KINDS: dict[str, ObservationKind] = {
    k.code: k
    for k in (
        ObservationKind("temperature", "Temperature", ValueType.NUMBER, "°C", 25, 45,
                        needed_by="CRS grade, HLH-2004, HScore"),
        ObservationKind("hypotension", "Hypotension", ValueType.YESNO, needed_by="CRS grade"),
        # vital signs as an EHR sends them (FHIR vital-signs, HL7 OBX): recorded and shown;
        # hypotension and hypoxia stay a clinician's reading (criteria §5.1 gives no cut-off)
        ObservationKind("heart_rate", "Heart rate", ValueType.NUMBER, "/min", 10, 300,
                        needed_by="shown beside CRS"),
        ObservationKind("respiratory_rate", "Respiratory rate", ValueType.NUMBER, "/min", 0,
                        100, needed_by="shown beside CRS"),
        ObservationKind("systolic_bp", "Systolic blood pressure", ValueType.NUMBER, "mmHg", 20,
                        300, needed_by="shown beside CRS (hypotension)"),
        ObservationKind("diastolic_bp", "Diastolic blood pressure", ValueType.NUMBER, "mmHg",
                        10, 250, needed_by="shown beside CRS (hypotension)"),
        ObservationKind("spo2", "Oxygen saturation (SpO2)", ValueType.NUMBER, "%", 20, 100,
                        needed_by="shown beside CRS (hypoxia)"),
        ObservationKind("iv_fluids", "IV fluid bolus for hypotension", ValueType.YESNO,
                        needed_by="CRS grade"),
        ObservationKind("vasopressors", "Vasopressors (number, excluding vasopressin)",
                        ValueType.NUMBER, None, 0, 6, integer=True, needed_by="CRS grade"),
        ObservationKind("vasopressin", "Vasopressin given", ValueType.YESNO,
                        needed_by="CRS grade"),
        ObservationKind("oxygen_device", "Oxygen device", ValueType.CHOICE,
                        choices=OXYGEN_DEVICES, needed_by="CRS grade"),
        ObservationKind("oxygen_flow", "Oxygen flow", ValueType.NUMBER, "L/min", 0, 80,
                        needed_by="CRS grade"),
        ObservationKind("ice_score", "ICE score", ValueType.NUMBER, "points", 0, 10,
                        integer=True, needed_by="ICANS grade (12 years and older)"),
        ObservationKind("capd_score", "CAPD score", ValueType.NUMBER, "points", 0, 32,
                        integer=True, needed_by="ICANS grade (children under 12)"),
        ObservationKind("unable_to_assess", "Unable to perform ICE / CAPD", ValueType.YESNO,
                        needed_by="ICANS grade"),
        ObservationKind("consciousness", "Level of consciousness", ValueType.CHOICE,
                        choices=CONSCIOUSNESS, needed_by="ICANS grade"),
        ObservationKind("seizure", "Seizure", ValueType.CHOICE,
                        choices=("none", "rapidly_resolving", "prolonged_or_repetitive"),
                        needed_by="ICANS grade"),
        ObservationKind("motor_weakness", "Deep focal motor weakness", ValueType.YESNO,
                        needed_by="ICANS grade"),
        ObservationKind("cerebral_edema", "Cerebral oedema / raised ICP", ValueType.CHOICE,
                        choices=("none", "focal", "diffuse"), needed_by="ICANS grade"),
        ObservationKind("organomegaly", "Organomegaly", ValueType.CHOICE,
                        choices=("none", "hepatomegaly", "splenomegaly", "both"),
                        needed_by="HLH-2004, HScore"),
        ObservationKind("hemophagocytosis", "Haemophagocytosis (marrow or tissue)",
                        ValueType.YESNO, needed_by="IEC-HS, HLH-2004, HScore, Neelapu 2018"),
        ObservationKind("immunosuppression", "Known underlying immunosuppression",
                        ValueType.YESNO, needed_by="HScore"),
        ObservationKind("pulmonary_edema", "Pulmonary oedema (CTCAE grade)", ValueType.NUMBER,
                        "grade", 0, 5, integer=True, needed_by="Neelapu 2018"),
        ObservationKind("oliguria", "Oliguria (CTCAE grade)", ValueType.NUMBER, "grade", 0, 5,
                        integer=True, needed_by="Neelapu 2018"),
        ObservationKind("bleeding", "Active bleeding", ValueType.YESNO,
                        needed_by="supportive thresholds"),
        ObservationKind("transfusion", "Transfusion", ValueType.CHOICE,
                        choices=("rbc", "platelets", "cryoprecipitate", "ffp"),
                        needed_by="T-ICAHT recovery, supportive thresholds"),
        ObservationKind("fasting", "Fasting for triglycerides", ValueType.YESNO,
                        needed_by="HLH-2004"),
        ObservationKind("nk_activity", "NK-cell activity", ValueType.CHOICE,
                        choices=("normal", "low", "absent"), needed_by="HLH-2004"),
        ObservationKind("dialysis", "Dialysis / renal replacement", ValueType.YESNO,
                        needed_by="IEC-HS grade"),
        ObservationKind("mechanical_ventilation", "Mechanical ventilation", ValueType.YESNO,
                        needed_by="IEC-HS grade"),
        ObservationKind("icu_admission", "ICU admission", ValueType.YESNO,
                        needed_by="IEC-HS grade"),
    )
}

_YES = {"yes", "y", "true", "1", "present", "positive"}
_NO = {"no", "n", "false", "0", "absent", "negative"}


def parse_observation_value(kind: ObservationKind, raw: str) -> tuple[float | None, str | None]:
    """(value_num, value_text) for a raw value, or ValueError with a sentence a nurse reads."""
    text = raw.strip()
    if kind.type is ValueType.YESNO:
        low = text.lower()
        if low in _YES:
            return 1.0, None
        if low in _NO:
            return 0.0, None
        raise ValueError(f"{kind.label} must be yes or no, not {raw!r}")
    if kind.type is ValueType.CHOICE:
        low = text.lower().replace(" ", "_").replace("-", "_")
        if low in kind.choices:
            return None, low
        raise ValueError(f"{kind.label} must be one of {', '.join(kind.choices)}, not {raw!r}")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{kind.label} must be a number, not {raw!r}") from None
    if kind.integer and value != int(value):
        raise ValueError(f"{kind.label} must be a whole number, not {raw!r}")
    if (kind.low is not None and value < kind.low) or (kind.high is not None and value > kind.high):
        unit = f" {kind.unit}" if kind.unit else ""
        raise ValueError(
            f"{kind.label} {value:g}{unit} is outside the possible range "
            f"{kind.low:g}–{kind.high:g}{unit}"
        )
    return value, None


class DrugClass(StrEnum):
    ANTI_CYTOKINE = "anti-cytokine"
    STEROID = "corticosteroid"
    ANTIPYRETIC = "antipyretic"
    HLH_DIRECTED = "IEC-HS-directed"
    TRANSFUSION = "transfusion"
    OTHER = "other"


# drug code -> (label, classes). IEC-HS-directed therapy per design.md's therapy_response.
DRUGS: dict[str, tuple[str, frozenset[DrugClass]]] = {
    "tocilizumab": ("Tocilizumab", frozenset({DrugClass.ANTI_CYTOKINE})),
    "siltuximab": ("Siltuximab", frozenset({DrugClass.ANTI_CYTOKINE})),
    "dexamethasone": ("Dexamethasone", frozenset({DrugClass.STEROID, DrugClass.HLH_DIRECTED})),
    "methylprednisolone": ("Methylprednisolone",
                           frozenset({DrugClass.STEROID, DrugClass.HLH_DIRECTED})),
    "prednisolone": ("Prednisolone", frozenset({DrugClass.STEROID, DrugClass.HLH_DIRECTED})),
    "hydrocortisone": ("Hydrocortisone", frozenset({DrugClass.STEROID, DrugClass.HLH_DIRECTED})),
    "anakinra": ("Anakinra", frozenset({DrugClass.ANTI_CYTOKINE, DrugClass.HLH_DIRECTED})),
    "ruxolitinib": ("Ruxolitinib", frozenset({DrugClass.HLH_DIRECTED})),
    "emapalumab": ("Emapalumab", frozenset({DrugClass.ANTI_CYTOKINE, DrugClass.HLH_DIRECTED})),
    "etoposide": ("Etoposide", frozenset({DrugClass.HLH_DIRECTED})),
    "paracetamol": ("Paracetamol / acetaminophen", frozenset({DrugClass.ANTIPYRETIC})),
    "ibuprofen": ("Ibuprofen", frozenset({DrugClass.ANTIPYRETIC})),
    "rbc_transfusion": ("RBC transfusion", frozenset({DrugClass.TRANSFUSION})),
    "platelet_transfusion": ("Platelet transfusion", frozenset({DrugClass.TRANSFUSION})),
    "cryoprecipitate": ("Cryoprecipitate", frozenset({DrugClass.TRANSFUSION})),
    "fibrinogen_concentrate": ("Fibrinogen concentrate", frozenset({DrugClass.TRANSFUSION})),
    "ffp": ("Fresh frozen plasma", frozenset({DrugClass.TRANSFUSION})),
    "gcsf": ("G-CSF", frozenset({DrugClass.OTHER})),
    "levetiracetam": ("Levetiracetam", frozenset({DrugClass.OTHER})),
}

DRUG_ALIASES = {
    "acetaminophen": "paracetamol",
    "dex": "dexamethasone",
    "methylpred": "methylprednisolone",
    "steroids": "dexamethasone",
    "g-csf": "gcsf",
    "filgrastim": "gcsf",
    "rbc": "rbc_transfusion",
    "platelets": "platelet_transfusion",
    "cryo": "cryoprecipitate",
}


def resolve_drug(text: str) -> str | None:
    key = text.strip().lower().replace(" ", "_")
    key = DRUG_ALIASES.get(key, key)
    return key if key in DRUGS else None


def drugs_in(cls: DrugClass) -> frozenset[str]:
    return frozenset(code for code, (_, classes) in DRUGS.items() if cls in classes)


MISSING_REASONS = ("not_drawn", "haemolysed", "pending", "refused", "other")
