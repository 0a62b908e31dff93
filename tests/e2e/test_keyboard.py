"""A real browser, keyboard only: a nurse opens Enter data from the sidebar, picks the patient,
types a day's lab, saves it, then corrects the typo with a reason. After the sign-in (the
shared helper) nothing is clicked, filled or focused by script: only Tab, arrows, Enter and
typing, so every control on the path is proven reachable and operable from the keyboard."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from tests.e2e.conftest import log_in, settle, shot

PID = "SYN-009"  # not SYN-004: test_entry saves a ferritin for it in the same minute
TYPED, FIXED = "3456", "3465"  # a transposed-digit typo and its correction

# what a screen reader would announce for the focused element: role, then its name
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return 'body';
  const name = e.getAttribute('aria-label') || (e.labels && e.labels[0] && e.labels[0].innerText)
    || e.innerText || e.value || '';
  return `${e.getAttribute('role') || e.tagName.toLowerCase()}: ${name.replace(/\\s+/g, ' ')}`;
}"""


def focused(page: Page) -> str:
    return page.evaluate(FOCUSED)


def tab_to(page: Page, pattern: str, limit: int, key: str = "Tab") -> int:
    """Press `key` until the focused element's role and name match `pattern`; the number of
    presses (fails past `limit`, so a control that falls out of the tab order fails here)."""
    seen = []
    for n in range(1, limit + 1):
        page.keyboard.press(key)
        now = focused(page)
        seen.append(now)
        if re.search(pattern, now):
            return n
    raise AssertionError(f"{pattern!r} not reached in {limit} presses of {key}:\n"
                         + "\n".join(seen))


def lab_rows(db_url: str, value: str) -> list[tuple]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            return list(c.execute(text(
                "SELECT l.id, l.value, l.status, l.entered_by, l.supersedes_id, "
                "l.correction_reason FROM labresult l JOIN patient p ON p.id = l.patient_pk "
                "WHERE p.patient_id = :pid AND l.analyte = 'ferritin' "
                "AND l.original_value = :v ORDER BY l.id"), {"pid": PID, "v": value}))
    finally:
        engine.dispose()


def test_nurse_enters_and_corrects_a_lab_by_keyboard_alone(
        page: Page, app_url: str, e2e_db: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    log_in(page, app_url, "nurse.e2e")  # the overview; from here on, the keyboard only
    expect(page.get_by_role("heading", name="Ward overview")).to_be_visible(timeout=60_000)
    started = time.monotonic()

    # the sidebar: the page link, then the patient picker (type to filter, Enter picks).
    # After signing in, focus may be left at the top of the page or in the main area (when
    # the sign-in form's rerun ends), so the Tab order may first run down the overview and
    # wrap round to the sidebar: as it does for a nurse.
    tab_to(page, r"^a: .*Enter data$", limit=70)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Enter data")).to_be_visible(timeout=60_000)
    settle(page)
    tab_to(page, r"^combobox: Patient$", limit=15)
    page.keyboard.type(PID)
    page.keyboard.press("Enter")
    settle(page)
    expect(page.get_by_text(f"Patient {PID}", exact=False)).to_be_visible()

    # the day panel: down the Blood counts column into Inflammation, type, Tab on to Save
    presses = tab_to(page, r"^input: Ferritin \(", limit=25)
    assert presses <= 20, f"{presses} Tab presses from the patient picker to Ferritin"
    page.keyboard.type(TYPED)
    tab_to(page, r"^button: Save day$", limit=60)
    page.keyboard.press("Enter")
    settle(page)
    expect(page.get_by_text("Saved 1 lab", exact=False)).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    rows = lab_rows(e2e_db, TYPED)
    assert [(r[2], r[3]) for r in rows] == [("final", "nurse.e2e")], rows
    shot(page, "keyboard-entry-saved")

    # the correction: arrow keys along the tab list, type to pick the value, Tab through the
    # fields, Space on the button
    tab_to(page, r"^tab: Day panel$", limit=80, key="Shift+Tab")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Correct a value")).to_have_attribute(
        "aria-selected", "true")
    tab_to(page, r"^combobox: Value$", limit=10)
    page.keyboard.type(f"Ferritin · {TYPED}")
    page.keyboard.press("Enter")
    settle(page)
    tab_to(page, r"^input: Corrected value$", limit=3)  # straight on, not through a grid
    page.keyboard.type(FIXED)
    tab_to(page, r"^combobox: Reason$", limit=5)  # Tab leaves the field: its value is sent
    page.keyboard.type("Typing")
    page.keyboard.press("Enter")
    settle(page)
    tab_to(page, r"^button: Save correction$", limit=10)
    page.keyboard.press("Space")
    settle(page)
    expect(page.get_by_text("Corrected; the old value is kept in the history.")).to_be_visible(
        timeout=30_000)
    shot(page, "keyboard-entry-corrected")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    # the page now shows the corrected value (its history holds the typo)
    expect(page.get_by_role("combobox", name="Value")).to_have_value(
        re.compile(f"Ferritin · {FIXED} ng/mL$"))
    old, new = lab_rows(e2e_db, TYPED), lab_rows(e2e_db, FIXED)
    assert [r[2] for r in old] == ["superseded"], old
    assert len(new) == 1 and new[0][2] == "final" and new[0][4] == old[0][0], new
    assert new[0][5].startswith("typo"), new  # the reason picked by keyboard is stored
    shot(page, "keyboard-correction-saved")
    print(f"keyboard path: {time.monotonic() - started:.1f} s after sign-in")
