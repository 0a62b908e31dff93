"""The admin page's Interfaces section: what the lab feed sent in the last day (a real HL7
message through the listener's own path), and the interface settings, saved and audited."""

from __future__ import annotations

from sqlalchemy import create_engine, select
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from core.capture.entry import site_setting
from core.store.lab_reads import PRELIMINARY_SETTING
from core.store.models import AuditLog
from tests.dashboard.conftest import APP, sign_in
from tests.dashboard.test_held_page import FER, arrive, oru


def _admin(sample_url: str) -> AppTest:
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "admin.amy", sample_url)
    at.switch_page("pages/admin.py").run()
    assert not at.exception, at.exception
    return at


def test_the_traffic_of_the_last_day_is_shown(sample_url: str) -> None:
    at = _admin(sample_url)
    assert any("Nothing received from another system" in i.value for i in at.info)
    arrive(sample_url, oru("IF1", [FER], patient="MRN-77001"))  # unknown patient: held
    at.run()
    table = next(d.value for d in at.dataframe if "Interface" in d.value)
    row = table.iloc[0]
    assert row["Interface"] == "Laboratory feed (HL7 v2)"
    assert (row["Held (last 24 h)"], row["Waiting on Held messages"], row["Stored"]) == (1, 1, 0)


def test_the_preliminary_setting_is_saved_and_audited(sample_url: str) -> None:
    at = _admin(sample_url)
    at.toggle(key="iface_preliminary").set_value(True).run()
    assert not at.exception, at.exception
    engine = create_engine(sample_url)
    assert site_setting(engine, PRELIMINARY_SETTING) is True
    with Session(engine) as s:
        row = s.execute(select(AuditLog).where(AuditLog.record_id == PRELIMINARY_SETTING)
                        ).scalars().one()
        assert row.actor == "admin.amy" and row.after == {"value": True}
    at.text_input(key="iface_id_type").input("MR")
    at.text_input(key="iface_products").input("KTE-X19, local-car-t")
    at.button[[b.label for b in at.button].index("Save interface settings")].click().run()
    assert site_setting(engine, "hl7.patient_identifier_type") == "MR"
    assert site_setting(engine, "fhir.car_t_product_codes") == ["KTE-X19", "local-car-t"]
