"""A real browser opens the patient page and sees the chart, its bands, lines and alerts."""

from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in, shot


def _open(page: Page, app_url: str, patient_id: str) -> None:
    page.set_viewport_size({"width": 1500, "height": 1100})
    log_in(page, app_url, "dr.e2e", f"/patient?patient={patient_id}")
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible(
        timeout=60_000)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)


def test_patient_page_shows_the_chart(page: Page, app_url: str) -> None:
    _open(page, app_url, "SYN-004")
    expect(page.get_by_text("SYN-004").first).to_be_visible()
    expect(page.get_by_text("Screening flag for clinician review — not a diagnosis.").first
           ).to_be_visible()
    chart = page.get_by_test_id("stPlotlyChart")
    # episode bands and threshold lines are drawn, with their labels
    assert page.locator(".shapelayer path").count() >= 3
    expect(chart.get_by_text("IEC-HS grade 3").first).to_be_visible()
    expect(chart.get_by_text("Neelapu HLH/MAS entry", exact=False).first).to_be_attached()
    expect(chart.get_by_text("Anakinra").first).to_be_attached()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    shot(page, "patient-SYN-004")


def test_patient_page_alerts_and_scores_tabs(page: Page, app_url: str) -> None:
    _open(page, app_url, "SYN-005")
    page.get_by_role("tab", name="Alerts").click()
    expect(page.get_by_role("button", name="Acknowledge").first).to_be_visible()
    expect(page.get_by_text("not an order", exact=False)).to_have_count(0)  # no IEC-HS alert
    page.get_by_role("tab", name="Scores").click()
    expect(page.get_by_text("HLH-2004 (5 of 8 needed)", exact=False).first).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    shot(page, "patient-SYN-005-scores")
