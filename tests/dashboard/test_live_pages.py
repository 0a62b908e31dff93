"""AppTest, live monitoring (issue 13): a write made outside the page (a direct core call, as
another server, the CLI or the monitor would make it) shows on the page's next run with no
cache cleared; the monitor's heartbeat and failed notifications show as banners on the
huddle wall and the ward overview."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from core.capture.importing import import_file
from core.monitoring.monitor import MonitorStatus
from core.store.db import make_engine
from core.store.models import MonitorCycle, Notification, NotificationStatus, utcnow
from dashboard.ward_view import ward_notices
from tests.dashboard.test_ward_pages import all_output

BED = "4A-01"  # SYN-001: the uneventful course, no severe alert on the sample day


def import_labs(url: str, rows: str) -> None:
    """Import lab rows through core, as `python -m core import` does (no page involved)."""
    engine = make_engine(url)
    report = import_file(engine, ("patient_id,collected_at,analyte,value,unit\n" + rows)
                         .encode(), "live.csv", user="other.process")
    engine.dispose()
    assert report.ok and report.rows_new, [str(e) for e in report.errors]


def lab_row(analyte: str, value: float, unit: str) -> str:
    when = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    return f"SYN-001,{when},{analyte},{value},{unit}\n"


def add(url: str, *rows: object) -> None:
    engine = make_engine(url)
    with Session(engine) as s:
        s.add_all(rows)
        s.commit()
    engine.dispose()


def cycle(finished: datetime) -> MonitorCycle:
    return MonitorCycle(worker="test:1", started_at=finished - timedelta(seconds=2),
                        finished_at=finished, patients=13)


def tile(app, bed: str) -> str:
    """The huddle tile (HTML) of one bed."""
    html = "".join(m.value for m in app.markdown)
    tiles = [t for t in html.split('<div class="tile"')[1:] if f">{bed}<" in t]
    assert len(tiles) == 1, f"no single tile for bed {bed}"
    return tiles[0]


def counts(app, bed: str) -> str:
    """The tile's "N severe · N warn · N info" line (HTML)."""
    found = re.search(r'class="counts">(.*?)</div>', tile(app, bed))
    assert found, tile(app, bed)
    return found.group(1)


def severe_count(app, bed: str) -> int:
    found = re.search(r'class="counts">(?:<span[^>]*>)?(\d+) severe', tile(app, bed))
    assert found, tile(app, bed)
    return int(found.group(1))


def overview_row(app, bed: str) -> dict:
    table = app.dataframe[0].value
    return table[table["Bed"] == bed].iloc[0].to_dict()


def huddle(app):  # noqa: ANN001, ANN201
    app.query_params["page_size"] = "24"
    return app.switch_page("pages/huddle.py").run()


# --- a write elsewhere shows on the next run ------------------------------------------------

def test_overview_shows_a_result_written_elsewhere_on_the_next_run(app, sample_url):
    app.switch_page("pages/overview.py").run()
    before = overview_row(app, BED)
    assert before["Severe"] == 0 and "8" not in before["Platelets"].split()

    import_labs(sample_url, lab_row("platelets", 8, "10^9/L"))  # CTCAE grade 4: severe
    app.run()  # no cache cleared: the data version moved

    after = overview_row(app, BED)
    assert after["Platelets"].split()[0] == "8"
    assert after["Severe"] >= 1  # the import's own transaction raised the alert


def test_huddle_tick_shows_a_result_written_elsewhere(app, sample_url):
    huddle(app)
    assert not app.exception
    assert severe_count(app, BED) == 0
    assert "#D7263D" not in counts(app, BED)  # "0 severe" is not written in red

    import_labs(sample_url, lab_row("platelets", 8, "10^9/L"))
    app.run()  # what the fragment's next tick runs

    assert severe_count(app, BED) >= 1
    assert "#D7263D" in counts(app, BED)
    assert "SEVERE: CTCAE Platelets grade 4" in tile(app, BED)


def test_inbox_lists_an_alert_raised_elsewhere_on_the_next_run(app, sample_url):
    app.switch_page("pages/alerts.py").run()
    app.multiselect(key="alerts_patient").set_value(["SYN-001"]).run()
    assert "severe" not in set(app.dataframe[0].value["Severity"].str.lower())

    import_labs(sample_url, lab_row("platelets", 8, "10^9/L"))
    app.run()

    table = app.dataframe[0].value
    assert "SEVERE" in set(table[table["Rule"] == "CTCAE Platelets"]["Severity"])


# --- the monitor's heartbeat and failed notifications ---------------------------------------

def test_monitor_banner_shows_until_the_monitor_finishes_a_cycle(app, sample_url):
    huddle(app)
    assert "MONITOR NOT RUNNING (never started)" in tile_free(app)
    app.switch_page("pages/overview.py").run()
    assert any("MONITOR NOT RUNNING" in w.value for w in app.warning)

    stopped = utcnow() - timedelta(hours=2)  # on the sample day; the ward's zone is UTC here
    add(sample_url, cycle(stopped))
    huddle(app)
    assert f"MONITOR NOT RUNNING since {stopped:%H:%M}" in tile_free(app)

    add(sample_url, cycle(utcnow() - timedelta(seconds=30)))  # running again
    huddle(app)
    assert "MONITOR NOT RUNNING" not in all_output(app)
    app.switch_page("pages/overview.py").run()
    assert not any("MONITOR" in w.value for w in app.warning)


def test_monitor_banner_gives_the_time_in_the_wards_zone(app, sample_url, monkeypatch):
    monkeypatch.setenv("CARTWATCH_WARD_TZ", "America/New_York")
    stopped = utcnow() - timedelta(hours=3)
    add(sample_url, cycle(stopped))
    app.switch_page("pages/overview.py").run()
    local = stopped.astimezone(ZoneInfo("America/New_York"))
    shown = next(w.value for w in app.warning if "MONITOR NOT RUNNING" in w.value)
    assert f"since {local:%H:%M}" in shown or f"since {local:%a %d %b %H:%M}" in shown
    assert f"{stopped:%H:%M}" not in shown  # not UTC (New York is 4-5 hours behind)


@pytest.mark.parametrize("screen", ["huddle", "overview"])
def test_a_failed_notification_shows_a_banner(app, sample_url, screen):
    add(sample_url, cycle(utcnow()), Notification(
        dedupe_key="test:fired:on-call", event="fired", contact="car-t on-call",
        severity="severe", status=NotificationStatus.FAILED, attempts=5,
        last_error="connection refused"))
    if screen == "huddle":
        huddle(app)
        text = tile_free(app)
        assert "1 ALERT NOTIFICATION NOT DELIVERED" in text
        assert "MONITOR NOT RUNNING" not in text
    else:
        app.switch_page("pages/overview.py").run()
        assert any("1 ALERT NOTIFICATION NOT DELIVERED" in e.value for e in app.error)
        assert not any("MONITOR" in w.value for w in app.warning)


def tile_free(app) -> str:
    """The wall's HTML outside the tiles (header and banners)."""
    html = "".join(m.value for m in app.markdown if 'class="hud"' in m.value)
    assert html, "the wall did not render"
    return html.split('<div class="hud-grid"')[0]


NOON = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("last", "failed", "failing", "headlines"), [
    pytest.param(timedelta(minutes=9), 0, 0, [], id="running: last cycle within 2 intervals"),
    pytest.param(timedelta(minutes=11), 0, 0, ["MONITOR NOT RUNNING since 12:49"],
                 id="stopped: 11 min ago, ward time (Europe/Berlin, UTC+1)"),
    pytest.param(timedelta(hours=20), 0, 0, ["MONITOR NOT RUNNING since Fri 20 Nov 17:00"],
                 id="stopped yesterday (ward time): with the date"),
    pytest.param(None, 0, 0, ["MONITOR NOT RUNNING (never started)"], id="never ran"),
    pytest.param(timedelta(minutes=1), 2, 0, ["2 ALERT NOTIFICATIONS NOT DELIVERED"],
                 id="failed deliveries"),
    pytest.param(timedelta(minutes=1), 0, 1, ["SOME ALERTS MAY BE OUT OF DATE"],
                 id="evaluation failures"),
])
def test_ward_notices_name_the_problem_in_the_wards_time(last, failed, failing, headlines):
    monitor = MonitorStatus(None if last is None else NOON - last, NOON, timedelta(minutes=5),
                            failed, 0, failing)
    notices = ward_notices(monitor, ZoneInfo("Europe/Berlin"))
    assert [n.headline for n in notices] == headlines
    assert all("administrator" in n.detail for n in notices)
