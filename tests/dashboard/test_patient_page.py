"""The patient page draws the labs and the documented episodes for every sample patient."""

import json

import pandas as pd
import pytest

from core.config import SAMPLE_DIR

SAMPLE_IDS = list(pd.read_csv(SAMPLE_DIR / "patients.csv")["patient_id"])


def figure(at) -> dict:
    charts = at.get("plotly_chart")
    assert charts, "no chart on the page"
    return json.loads(charts[0].proto.spec)


@pytest.mark.parametrize("patient_id", SAMPLE_IDS)
def test_patient_page_plots_labs_and_episode_bands(app, patient_id):
    app.session_state["patient_id"] = patient_id
    app.switch_page("pages/patient.py").run()
    assert not app.exception
    spec = figure(app)
    names = {t.get("name") for t in spec["data"]}
    assert {"Ferritin", "Fibrinogen", "ANC", "Platelets"} <= names
    episodes = pd.read_csv(SAMPLE_DIR / "episodes.csv")
    n_eps = int((episodes["patient_id"] == patient_id).sum())
    rects = [s for s in spec["layout"].get("shapes", []) if s["type"] == "rect"]
    assert len(rects) >= n_eps
    assert any(t.value.startswith(patient_id) for t in app.title)
