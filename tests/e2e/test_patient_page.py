"""A real browser opens the patient page and sees the chart, its bands, lines and alerts, and
reaches the chart's values table from the keyboard."""

import json
import re

from playwright.sync_api import Page, expect

from core.vocabulary.units import fmt
from dashboard.resources import ELEMENT_MODULES
from tests.e2e.conftest import log_in, shot
from tests.e2e.test_accessibility import blocking_violations
from tests.e2e.test_keyboard import tab_to


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
    page.get_by_text("Values as a table", exact=True).click()
    # a censored result keeps its qualifier in the table (st.table reads cells as Markdown)
    expect(page.get_by_test_id("stTable").first).to_contain_text(">100,000")
    page.get_by_role("tab", name="Alerts").click()
    expect(page.get_by_role("button", name="Acknowledge").first).to_be_visible()
    expect(page.get_by_text("not an order", exact=False)).to_have_count(0)  # no IEC-HS alert
    page.get_by_role("tab", name="Scores").click()
    expect(page.get_by_text("HLH-2004 (5 of 8 needed)", exact=False).first).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    shot(page, "patient-SYN-005-scores")


def test_chart_has_a_description_and_its_values_table_opens_from_the_keyboard(
        page: Page, app_url: str) -> None:
    _open(page, app_url, "SYN-004")
    chart = page.get_by_role("figure", name=re.compile(r"^Timeline chart of Ferritin"))
    expect(chart).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Timeline chart of Ferritin.*right below the chart"))
           ).to_be_visible()  # the same description, visible under the chart
    expect(page.get_by_test_id("stTable").filter(visible=True)).to_have_count(0)  # folded
    # keyboard only: Tab into the chart (its toolbar), then on to the table's control
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => !!document.activeElement.closest('[data-testid=stPlotlyChart]')"):
            break
    else:
        raise AssertionError("Tab never reached the chart")
    presses = tab_to(page, r"^summary: .*Values as a table$", limit=12)
    print(f"{presses} Tab presses from the chart's first control to 'Values as a table'")
    page.keyboard.press("Enter")
    table, context = page.get_by_test_id("stTable").first, page.get_by_test_id("stTable").nth(1)
    expect(table).to_be_visible()
    expect(table.get_by_role("columnheader", name="Ferritin (ng/mL)")).to_be_visible()
    # the table holds the values the chart draws: the chart's own ferritin points
    ferritin = json.loads(page.evaluate(
        "() => JSON.stringify(Array.from(document.querySelectorAll("
        "'[data-testid=\"stPlotlyChart\"] .js-plotly-plot')).flatMap(g => g.data)"
        ".filter(t => t.meta && t.meta.role === 'values' && t.meta.analyte === 'ferritin'))"))
    assert ferritin and len(ferritin[0]["y"]) > 5
    text = table.inner_text()
    for y in ferritin[0]["y"][-3:]:
        assert fmt(y) in text, (fmt(y), text[:400])
    expect(context).to_contain_text("IEC-HS grade 3")  # the windows are in a table too
    expect(context).to_contain_text("Anakinra")  # and the treatments
    # nothing hides behind a sideways scroll (a keyboard user could not reach it)
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.wait_for_timeout(300)
    assert table.evaluate("t => t.firstElementChild.scrollWidth <= t.firstElementChild"
                          ".clientWidth + 1")
    found = blocking_violations(page, "patient timeline, values table open")
    assert found == [], "\n".join(found)
    shot(page, "patient-values-table")


def test_the_element_modules_load_on_the_sign_in_page(page: Page, app_url: str) -> None:
    """The sign-in page (and then the sidebar) prefetches the browser modules of the elements
    the pages draw while the browser is idle, so the session's first timeline waits neither
    for its Plotly chart's module nor for its widgets' (dashboard.resources.prefetch_modules).
    Without the prefetch, none of them is loaded by a page that does not draw them."""
    page.goto(app_url)
    expect(page.get_by_label("User name")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(0)  # no chart on this page
    page.wait_for_function(
        "names => names.every(n => performance.getEntriesByType('resource')"
        ".some(e => e.name.split('/').pop().startsWith(n + '.') && e.name.endsWith('.js')))",
        arg=list(ELEMENT_MODULES), timeout=30_000)
    log_in(page, app_url)  # the overview, prefetching in the sidebar, still runs cleanly
    expect(page.get_by_test_id("stException")).to_have_count(0)
