"""A real browser opens the patient page and sees the chart with its episode bands."""

from playwright.sync_api import Page, expect

from tests.e2e.conftest import shot


def test_patient_page_shows_the_chart(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{app_url}/?patient=SYN-004")
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible(
        timeout=60_000)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
    expect(page.get_by_text("SYN-004").first).to_be_visible()
    assert page.locator(".shapelayer path").count() >= 1
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    shot(page, "patient-SYN-004")
