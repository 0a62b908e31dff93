"""Bytes to a frame of strings: encoding, delimiter and header checks, kind detection."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pandas as pd

# design.md "Import formats": required and optional columns per file kind.
# A tuple inside `required` means "one of these".
KINDS: dict[str, dict[str, tuple]] = {
    "patients": {
        "required": ("patient_id", "infusion_date", "product"),
        "optional": ("initials", "bed", "sex", "birth_year", "weight_kg", "disease",
                     "lymphodepletion_start", "ward", "status"),
    },
    "labs": {
        "required": ("patient_id", ("collected_at", "day"), "analyte", "value", "unit"),
        "optional": ("ref_low", "ref_high", "qualifier", "loinc"),
    },
    "observations": {
        "required": ("patient_id", ("observed_at", "day"), "kind", "value"),
        "optional": ("unit", "note"),
    },
    "episodes": {
        "required": ("patient_id", "kind", "grade", ("onset", "onset_day")),
        "optional": ("resolved", "resolved_day", "note"),
    },
    "treatments": {
        "required": ("patient_id", ("given_at", "day"), "drug"),
        "optional": ("dose", "dose_unit", "route"),
    },
    "events": {
        "required": ("patient_id", "kind", ("at", "day")),
        "optional": ("note",),
    },
    # explained gaps (not in design.md's six kinds): why an expected lab has no value
    "missing": {
        "required": ("patient_id", "day", "analyte", "reason"),
        "optional": (),
    },
}


@dataclass(frozen=True)
class RowError:
    """One problem in a file: the spreadsheet row (header = row 1), column, value, sentence."""

    row: int
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row else "file"
        col = f", column {self.column}" if self.column else ""
        val = f" (value {self.value!r})" if self.value else ""
        return f"{where}{col}{val}: {self.message}"

    def to_json(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "value": self.value,
                "message": self.message}


class FileRejected(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def _missing(required: tuple, columns: set[str]) -> list[str]:
    out = []
    for col in required:
        options = col if isinstance(col, tuple) else (col,)
        if not any(o in columns for o in options):
            out.append(" or ".join(options))
    return out


def detect_kind(columns: list[str]) -> str | None:
    """The file kind whose required columns the header has (most specific first)."""
    cols = set(columns)
    for kind in ("labs", "observations", "episodes", "treatments", "events", "missing",
                 "patients"):
        if not _missing(KINDS[kind]["required"], cols):
            return kind
    return None


def read_csv_bytes(data: bytes, kind: str | None = None) -> tuple[str, pd.DataFrame]:
    """(kind, frame of stripped strings) or FileRejected with file-level problems."""
    if not data.strip():
        raise FileRejected([RowError(0, "", "", "The file is empty: there is nothing to import.")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileRejected([RowError(
            line, "", "",
            f"The file is not UTF-8 text (unreadable byte at position {exc.start}). "
            "Save it again as 'CSV UTF-8 (comma delimited)' and re-import.",
        )]) from None
    header = text.splitlines()[0] if text.splitlines() else ""
    if header.count(";") > header.count(",") or header.count("\t") > header.count(","):
        sep = "semicolons" if header.count(";") >= header.count("\t") else "tabs"
        raise FileRejected([RowError(
            1, "", "",
            f"The file is separated by {sep}, not commas. Export it as comma-separated "
            "CSV (in Excel: 'CSV UTF-8 (comma delimited)') so values are not misread.",
        )])
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                            skipinitialspace=True, quoting=csv.QUOTE_MINIMAL)
    except (pd.errors.ParserError, csv.Error) as exc:
        raise FileRejected([RowError(0, "", "", f"The file is not valid CSV: {exc}")]) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if frame.empty:
        raise FileRejected([RowError(0, "", "", "The file has a header row but no data rows.")])
    frame = frame.apply(lambda s: s.str.strip())
    cols = list(frame.columns)
    if kind is None:
        kind = detect_kind(cols)
        if kind is None:
            raise FileRejected([RowError(
                1, "", "",
                "Cannot tell what this file holds from its header "
                f"({', '.join(cols)}). Give --kind, or use a template's header.",
            )])
    if kind not in KINDS:
        raise FileRejected([RowError(0, "", kind,
                                     f"Unknown file kind; use one of {', '.join(KINDS)}.")])
    missing = _missing(KINDS[kind]["required"], set(cols))
    if missing:
        raise FileRejected([
            RowError(1, m, "", f"Required column '{m}' is missing from the header of a "
                                f"{kind} file.")
            for m in missing
        ])
    return kind, frame


def template_csv(kind: str) -> str:
    """A header-only CSV template for a file kind."""
    spec = KINDS[kind]
    cols = [c[0] if isinstance(c, tuple) else c for c in spec["required"]]
    cols += [c[1] for c in spec["required"] if isinstance(c, tuple)]
    cols += list(spec["optional"])
    return ",".join(cols) + "\n"
