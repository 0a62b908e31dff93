"""The FHIR import's report: the CSV import's report plus what was skipped, superseded and
retracted, in the one sentence the command line and the import page already print."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from core.capture.importing import ImportReport


@dataclass
class FhirReport(ImportReport):
    """`rows_new` counts every change the file makes: new rows, superseding rows and
    retractions (so a file holding only an entered-in-error still commits).
    `skipped`: reason -> resources CAR-T Watch does not monitor (never errors)."""

    skipped: Counter[str] = field(default_factory=Counter)
    superseded: int = 0
    retracted: int = 0

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        text = super().summary()
        if self.errors:
            return text
        verb = "would" if self.dry_run else ""
        parts = []
        if self.superseded:
            parts.append(f"{self.superseded} of the added row(s) "
                         f"{verb + ' ' if verb else ''}supersede an earlier value")
        if self.retracted:
            parts.append(f"{verb + ' retract' if verb else 'retracted'} {self.retracted} "
                         "value(s) (entered-in-error in the source EHR, or a vasopressor "
                         "count no longer defined)")
        if self.skipped:
            reasons = "; ".join(f"{n} {why}" for why, n in sorted(
                self.skipped.items(), key=lambda kv: (-kv[1], kv[0])))
            parts.append(f"skipped {self.rows_skipped} resource(s) CAR-T Watch does not "
                         f"monitor ({reasons})")
        return text if not parts else text[:-1] + "; " + "; ".join(parts) + "."
