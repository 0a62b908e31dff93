"""A real browser: a research nurse enters a day's panel with the keyboard only and sees the
value on the patient timeline; the import preview, verification queue and audit trail render."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in, shot

PID = "SYN-004"


def settle(page: Page) -> None:
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)


def test_keyboard_only_day_panel_reaches_the_timeline(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    log_in(page, app_url, "nurse.e2e", f"/entry?patient={PID}")  # the link survives sign-in
    expect(page.get_by_role("heading", name="Enter data")).to_be_visible(timeout=60_000)
    settle(page)
    # start in the first field of the Inflammation column, then only Tab, typing and Enter
    page.get_by_label("Ferritin (ng/mL)").focus()
    page.keyboard.type("4321")
    page.keyboard.press("Tab")  # -> CRP, the next field down the column
    page.keyboard.type("55")
    page.keyboard.press("Enter")  # submits the form
    settle(page)
    expect(page.get_by_text("Saved 2 labs")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    shot(page, "entry-saved")

    page.goto(f"{app_url}/patient?patient={PID}")
    chart = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first
    expect(chart).to_be_visible(timeout=60_000)
    settle(page)
    traces = json.loads(page.evaluate(
        "() => JSON.stringify(Array.from(document.querySelectorAll("
        "'[data-testid=\"stPlotlyChart\"] .js-plotly-plot')).flatMap(g => g.data))"))
    ferritin = [t for t in traces if "Ferritin" in str(t.get("name", ""))]
    assert ferritin, [t.get("name") for t in traces]
    text = json.dumps(ferritin)
    assert "4321" in text or "4,321" in text


def test_import_preview_refuses_a_bad_file_with_the_row(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    log_in(page, app_url, "nurse.e2e", "/import")
    upload = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    expect(upload).to_have_count(1, timeout=60_000)
    upload.set_input_files({"name": "labs.csv", "mimeType": "text/csv", "buffer":
                            f"patient_id,day,analyte,value,unit\n{PID},2.5,fibrinogen,2.1,"
                            "mg/dL\n".encode()})
    expect(page.get_by_text("nothing was written")).to_be_visible(timeout=60_000)
    settle(page)
    expect(page.get_by_test_id("stTable")).to_contain_text("was it g/L?")
    shot(page, "import-preview-rejected")


def test_verify_and_audit_pages_render(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    log_in(page, app_url, "nurse.e2e")
    for path, title in (("verify", "Verification queue"), ("audit", "Audit trail")):
        page.goto(f"{app_url}/{path}?patient={PID}")
        expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=60_000)
        settle(page)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        if path == "audit":
            expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1500)  # let the data grid paint before the screenshot
        shot(page, f"data-{path}")
