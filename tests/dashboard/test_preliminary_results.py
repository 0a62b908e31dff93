"""A preliminary result from the lab feed is never out of sight: the patient page lists it,
marked, even while the rules wait for the final value; the final value then replaces it."""

from __future__ import annotations

from sqlalchemy import create_engine

from core.capture.entry import save_site_setting
from core.store.lab_reads import PRELIMINARY_SETTING
from tests.core.test_hl7_receive import PLT, oru, stamp
from tests.dashboard.conftest import sign_in
from tests.dashboard.test_held_page import arrive
from tests.dashboard.test_patient_page import open_patient, rerun


def _box(app) -> str:  # noqa: ANN001
    return "\n".join(str(m.value) for m in app.markdown if "Preliminary results" in str(m.value))


def test_a_preliminary_platelet_count_is_listed_until_the_final_one(app, sample_url) -> None:  # noqa: ANN001
    sign_in(app, "nurse.kim")
    open_patient(app, "SYN-001")
    assert _box(app) == ""  # none yet
    taken = stamp(3)
    arrive(sample_url, oru("PRE1", [PLT], status="P", when=taken))
    rerun(app, "SYN-001")
    box = _box(app)
    assert "Preliminary results: 1" in box and "no rule reads them" in box, box
    table = app.table[0].value
    assert list(table.index) == ["Platelets"] and table.iloc[0]["Value"] == "8 10^9/L"
    assert table.iloc[0]["From"] == "lab feed"

    engine = create_engine(sample_url)
    save_site_setting(engine, PRELIMINARY_SETTING, True, "admin.amy")
    rerun(app, "SYN-001")
    assert "The rules read them" in _box(app)

    arrive(sample_url, oru("PRE2", [PLT], status="F", when=taken))  # the final value
    rerun(app, "SYN-001")
    assert _box(app) == ""
    engine.dispose()
