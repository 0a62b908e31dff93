"""Real browser at 1920x1080: the huddle wall refreshes itself after an import from another
process, shows no identifier, and the three ward screens render (screenshots)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DISPLAY_TOKEN, ROOT, log_in, shot

ID_PATTERN = re.compile(r"SYN-\d+")


def wait_for_script(page: Page) -> None:
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_huddle_tile_changes_after_an_import_from_another_process(
        page: Page, app_url: str, e2e_db: str, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{app_url}/huddle?display={DISPLAY_TOKEN}&interval=3&page_size=16&theme=dark")
    tile = page.locator(".tile", has_text="4A-05")  # SYN-014's bed
    expect(tile).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stSidebar")).to_be_hidden()
    assert not ID_PATTERN.search(page.locator("body").inner_text())
    assert "4,567" not in tile.inner_text()

    when = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    csv = tmp_path / "labs.csv"
    csv.write_text("patient_id,collected_at,analyte,value,unit\n"
                   f"SYN-014,{when},ferritin,4567,ng/mL\n")
    done = subprocess.run([sys.executable, "-m", "core", "--db", e2e_db, "--user", "e2e",
                           "import", str(csv)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    imported = time.monotonic()
    expect(tile).to_contain_text("Ferritin 4,567 ↑", timeout=15_000)  # no user action
    waited = time.monotonic() - imported
    assert waited < 3 + 5, f"the tile took {waited:.1f} s to change (interval 3 s)"
    assert not ID_PATTERN.search(page.locator("body").inner_text())
    shot(page, "huddle-refresh-1920")


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_huddle_bookmark_pages_eight_tiles(page: Page, app_url: str, theme: str) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{app_url}/huddle?display={DISPLAY_TOKEN}&theme={theme}&page_size=8&interval=60")
    expect(page.locator(".tile").first).to_be_visible(timeout=60_000)
    expect(page.locator(".tile")).to_have_count(8)
    expect(page.get_by_text(re.compile(r"page 1/2 · updated \d\d:\d\d"))).to_be_visible()
    assert not ID_PATTERN.search(page.locator("body").inner_text())
    # colour is not the only signal: every tile names its level with a shape and a word,
    # and the left edge's pattern differs by level
    badges = page.locator(".tile .sev")
    expect(badges).to_have_count(8)
    words = re.compile(r"^(▲ (SEVERE|ESCALATED)|◆ WARNING|● INFO|○ ALL SEEN)$")
    for badge in badges.all():
        expect(badge).to_be_visible()
        expect(badge).to_have_text(words)
    first = page.locator(".tile").first
    assert first.get_attribute("data-level") == "severe"  # sorted by concern
    assert first.evaluate("t => getComputedStyle(t).borderLeftStyle") == "double"
    shot(page, f"huddle-{theme}-1920")


def test_overview_and_alert_inbox_render(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    log_in(page, app_url)  # the overview is the default page
    expect(page.get_by_role("heading", name="Ward overview")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    wait_for_script(page)
    page.wait_for_timeout(1500)
    shot(page, "overview-1400")
    page.goto(f"{app_url}/alerts")
    expect(page.get_by_role("heading", name="Alert inbox")).to_be_visible(timeout=60_000)
    wait_for_script(page)
    expect(page.get_by_text("not a diagnosis").first).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    page.wait_for_timeout(1500)  # the grid paints on a canvas after the script finishes
    shot(page, "alerts-1400")
