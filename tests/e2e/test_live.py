"""Real browser, live monitoring (issue 13): the huddle wall raises a severe tile after another
process imports a critical result, with no user action; the monitor and notification banners
come and go on the wall and the overview as the heartbeat and the outbox change (screenshots
at 1920x1080 for the wall)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import update
from sqlmodel import Session

from core.store.db import make_engine
from core.store.models import MonitorCycle, Notification, NotificationStatus, utcnow
from tests.e2e.conftest import DISPLAY_TOKEN, ROOT, log_in, settle, shot

INTERVAL = 5  # seconds between the wall's refreshes (the URL's interval)
SLACK = 6  # seconds on top of the interval: a tick, the query and the paint on 2 busy cores
SEVERE_RED = "rgb(215, 38, 61)"  # ward_view.SEVERITY_COLOURS["severe"]
BED = "4A-01"  # SYN-001, the uneventful course: no severe alert before the import


def since(stopped: datetime) -> str:
    """How the banners write the time (ward zone UTC here): HH:MM today, else with the date."""
    same_day = stopped.date() == utcnow().date()
    return f"since {stopped:%H:%M}" if same_day else f"since {stopped:%a %d %b %H:%M}"


def wall_url(app_url: str, page_size: int = 16) -> str:
    return (f"{app_url}/huddle?display={DISPLAY_TOKEN}&interval={INTERVAL}"
            f"&page_size={page_size}&theme=dark")


def open_wall(page: Page, app_url: str, page_size: int = 16) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(wall_url(app_url, page_size))
    expect(page.locator(".tile").first).to_be_visible(timeout=60_000)
    # the wall has its own URL: no "Page not found" dialog over it
    page.wait_for_timeout(1_500)
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_a_critical_result_imported_by_another_process_raises_a_severe_tile(
        page: Page, app_url: str, e2e_db: str, tmp_path: Path) -> None:
    open_wall(page, app_url)
    tile = page.locator(".tile", has_text=BED)
    expect(tile).to_be_visible()
    expect(tile).to_contain_text("0 severe")  # the precondition: nothing severe yet
    assert tile.evaluate("t => getComputedStyle(t).borderLeftColor") != SEVERE_RED

    when = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    csv = tmp_path / "critical.csv"
    csv.write_text(f"patient_id,collected_at,analyte,value,unit\nSYN-001,{when},platelets,8,"
                   "10^9/L\n")
    env = {**os.environ, "CARTWATCH_WARD_TZ": "UTC"}  # the server's zone
    env.pop("CARTWATCH_SITE_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "core", "--db", e2e_db, "--user", "lab.feed",
                           "import", str(csv)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    imported = time.monotonic()

    # no click, no reload: the wall's own refresh shows it
    expect(tile).to_contain_text("SEVERE: CTCAE Platelets grade 4",
                                 timeout=(INTERVAL + SLACK + 10) * 1000)
    waited = time.monotonic() - imported
    expect(tile.locator(".counts")).to_contain_text(re.compile(r"\b[1-9]\d* severe"))
    expect(tile.locator(".counts")).to_be_visible()  # high in the tile: seen at 16 a page
    assert tile.evaluate("t => getComputedStyle(t).borderLeftColor") == SEVERE_RED
    assert waited < INTERVAL + SLACK, (
        f"the severe tile took {waited:.1f} s to show (refresh every {INTERVAL} s)")
    print(f"severe tile {waited:.1f} s after the import finished")
    shot(page, "huddle-live-severe-1920")


def test_monitor_and_notification_banners_follow_the_heartbeat(
        page: Page, app_url: str, e2e_db: str) -> None:
    engine = make_engine(e2e_db)
    stopped = utcnow() - timedelta(hours=3)
    with Session(engine) as s:  # a monitor that stopped, and a page that never arrived
        s.add(MonitorCycle(worker="e2e:1", started_at=stopped - timedelta(seconds=3),
                           finished_at=stopped, patients=13))
        s.add(Notification(dedupe_key="e2e:fired:on-call", event="fired",
                           contact="car-t on-call", severity="severe",
                           status=NotificationStatus.FAILED, attempts=5,
                           last_error="connection refused"))
        s.commit()

    open_wall(page, app_url, page_size=8)
    banner = page.locator(".hud-notice")
    expect(banner.filter(has_text=f"MONITOR NOT RUNNING {since(stopped)}")).to_be_visible()
    expect(banner.filter(has_text="1 ALERT NOTIFICATION NOT DELIVERED")).to_be_visible()
    page.wait_for_timeout(800)
    shot(page, "huddle-monitor-banner-1920")

    overview = page.context.new_page()
    overview.set_viewport_size({"width": 1400, "height": 1000})
    log_in(overview, app_url)  # the overview is the default page
    alerts = overview.get_by_test_id("stAlert")
    expect(alerts.filter(has_text=f"MONITOR NOT RUNNING {since(stopped)}")).to_be_visible()
    expect(alerts.filter(has_text="1 ALERT NOTIFICATION NOT DELIVERED")).to_be_visible()
    settle(overview)
    overview.wait_for_timeout(1500)  # the grid paints on a canvas after the script finishes
    shot(overview, "overview-monitor-banner")

    with Session(engine) as s:  # the monitor is back and the notification went through
        s.add(MonitorCycle(worker="e2e:1", started_at=utcnow() - timedelta(seconds=3),
                           finished_at=utcnow(), patients=13))
        s.execute(update(Notification).where(Notification.dedupe_key == "e2e:fired:on-call")
                  .values(status=NotificationStatus.DELIVERED.value))
        s.commit()
    engine.dispose()
    changed = time.monotonic()
    expect(banner).to_have_count(0, timeout=(INTERVAL + SLACK + 10) * 1000)  # no reload
    waited = time.monotonic() - changed
    assert waited < INTERVAL + SLACK, f"the banners took {waited:.1f} s to go"
    print(f"banners gone {waited:.1f} s after the heartbeat")
    expect(page.locator(".tile").first).to_be_visible()
    page.wait_for_timeout(800)
    shot(page, "huddle-monitor-ok-1920")

    overview.reload()
    expect(overview.get_by_role("heading", name="Ward overview")).to_be_visible(timeout=60_000)
    settle(overview)
    expect(alerts.filter(has_text="MONITOR NOT RUNNING")).to_have_count(0)
    expect(alerts.filter(has_text="NOT DELIVERED")).to_have_count(0)
    expect(overview.get_by_text("not a diagnosis").first).to_be_visible()
    overview.wait_for_timeout(1500)
    shot(overview, "overview-monitor-ok")


def test_the_tv_link_at_the_root_opens_the_wall_with_its_settings(page: Page,
                                                                   app_url: str) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{app_url}/?display={DISPLAY_TOKEN}&page_size=8&theme=dark")
    expect(page.locator(".tile").first).to_be_visible(timeout=60_000)
    expect(page).to_have_url(re.compile(r"/huddle\?.*page_size=8"))
    expect(page.locator(".tile")).to_have_count(8)
    expect(page.get_by_role("dialog")).to_have_count(0)
