"""De-identified registry extract: keyed-hash subjects, days after infusion, age bands; no
date, study ID, initials or bed survives; refused without the site secret. CLI included."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select

from core.capture.importing import import_file
from core.capture.seeding import seed_sample
from core.config import SAMPLE_DIR
from core.store.models import LabResult, Patient, RecordStatus
from core.views.exporting import (
    REGISTRY_COLUMNS,
    RegistryRefused,
    age_band,
    registry_csv,
    registry_extract,
    subject_key,
)
from tests.cli_runner import run_cli

SECRET = "a-site-secret-of-32-characters!!"
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@pytest.fixture
def cohort(store):  # type: ignore[no-untyped-def]
    assert all(r.ok for r in seed_sample(store, SAMPLE_DIR))
    extra = ("patient_id,infusion_date,product,initials,bed,birth_year,disease\n"
             "MRN-77001,2026-11-01,axi-cel,QZ,BED-99,1930,DLBCL relapsed 2025-03-04 (MRN-77001)\n")
    assert import_file(store, extra.encode(), "extra.csv").ok
    return store


def test_no_date_study_id_initials_or_bed_survives(cohort) -> None:  # type: ignore[no-untyped-def]
    text = registry_csv(cohort, SECRET)
    with cohort.connect() as c:
        patients = c.execute(select(Patient.patient_id, Patient.bed, Patient.initials)).all()
        labs = c.execute(select(func.count()).select_from(LabResult).where(
            LabResult.status == RecordStatus.FINAL.value)).scalar_one()
    assert not DATE.findall(text)
    for pid, bed, initials in patients:
        assert pid not in text
        assert f",{bed}," not in text and f",{initials}," not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == REGISTRY_COLUMNS
    assert not {"initials", "bed", "ward", "birth_year", "infusion_date", "note"} & set(rows[0])
    subjects = {r["subject"] for r in rows}
    assert len(subjects) == len(patients)
    assert all(re.fullmatch(r"[0-9a-f]{24}", s) for s in subjects)
    assert sum(r["record"] == "lab" for r in rows) == labs
    old = [r for r in rows if r["subject"] == subject_key("MRN-77001", SECRET)]
    assert {r["age_band"] for r in old} == {"90+"}
    assert {r["disease"] for r in old} == {"DLBCL relapsed [date] ([id])"}


def test_subjects_are_keyed_by_the_site_secret() -> None:
    assert subject_key("SYN-001", SECRET) == subject_key("SYN-001", SECRET)
    assert subject_key("SYN-001", SECRET) != subject_key("SYN-001", SECRET + "x")
    assert subject_key("SYN-001", SECRET) != subject_key("SYN-002", SECRET)
    from datetime import date

    assert [age_band(y, date(2026, 1, 1)) for y in (1961, 1936, 2010, None)] == [
        "60-69", "90+", "10-19", ""]


def test_days_are_relative_to_infusion(cohort) -> None:  # type: ignore[no-untyped-def]
    frame = registry_extract(cohort, SECRET)
    labs = frame[frame["record"] == "lab"]
    assert labs["day"].between(-60, 400).all()
    assert frame["day"].min() < 0  # baseline labs before infusion are negative days


@pytest.mark.parametrize("secret", [None, "", "short"])
def test_refused_without_a_site_secret(store, secret) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryRefused, match="CARTWATCH_SITE_SECRET"):
        registry_extract(store, secret)


def test_cli_export_registry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    out = tmp_path / "registry.csv"
    no_secret = {"CARTWATCH_SITE_SECRET": None}
    seeded = run_cli("seed-sample", "--db", url, env=no_secret)
    assert seeded.returncode == 0, seeded.stderr
    refused = run_cli("export", "registry", "--out", out, "--db", url, env=no_secret)
    assert refused.returncode == 2 and "CARTWATCH_SITE_SECRET" in refused.stderr
    assert not out.exists()
    done = run_cli("export", "registry", "--out", out, "--db", url,
                   env={"CARTWATCH_SITE_SECRET": SECRET})
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "SYN-" not in text and not DATE.findall(text)
    assert subject_key("SYN-001", SECRET) in text
