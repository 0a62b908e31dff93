"""Benchmark: the patient timeline in a real browser, from the sidebar click to the chart drawn.

    .venv/bin/python bench/timeline_browser.py [--patients 14] [--revisits 1]
        [--shot PNG] [--profile FILE.cpuprofile] [--think S]

Builds the synthetic sample cohort (tests/sample_db.py, shifted so today is its day), adds a
clinician, starts the real server (`python -m dashboard` on 127.0.0.1) and signs in with
Playwright driving Debian's chromium. It opens "Patient timeline" from the sidebar (the first
patient), then picks every other patient in the sidebar's "Patient" box (a first view: nothing
of that patient is cached yet), then picks each again (a revisit). Each time counts from the
click (or Enter) until the page shows that patient, Streamlit's running indicator is gone and
the timeline's Plotly graph holds the new figure with its traces drawn.

Also per view: the server's part (click to the run's last message), the browser's busy time
(its long tasks, > 50 ms each) and the messages the browser sent (a second rerun of the script
would be a second message); once: the size of the figure (traces, shapes, annotations, SVG
nodes) and of the page.

--shot saves a full-page picture of the first patient. --profile records a JavaScript CPU
profile (DevTools protocol) of the first views into FILE (DevTools opens it) and prints where
the time went to stderr. Prints one JSON line; the target is the first view within 1 s
(median; p95 beside it). Synthetic data only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from bench._pg import free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # as tests/e2e/conftest.py
USER, PASSWORD = "bench.dr", "bench-only password"  # only in the temporary database
TARGET_S = 1.0
TIMEOUT_MS = 120_000

# Marks the figure on screen as seen before the click (the graph div is reused by a redraw),
# and times every Plotly draw of the page: the graph div's "plotly_afterplot" event fires at
# the end of each draw, so the time from the figure's arrival to it is the drawing time.
MARK_OLD = """() => {
  for (const gd of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot'))
    if (gd.data) gd.data.__benchOld = true;
  if (!window.__benchLong) {
    window.__benchLong = [];
    new PerformanceObserver(l => window.__benchLong.push(...l.getEntries().map(
      e => [e.startTime, e.duration]))).observe({type: 'longtask'});
  }
  window.__benchMark = performance.now();
}"""
# the main thread's long tasks (> 50 ms) since the mark: the browser's own work for a view
BUSY = """() => Math.round(window.__benchLong.filter(([t]) => t >= window.__benchMark)
  .reduce((n, [, d]) => n + d, 0))"""
DRAWN = """(pid) => {
  const h1 = document.querySelector('h1');
  if (!h1 || !h1.textContent.includes(pid)) return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  if (!gd || !gd.data || gd.data.__benchOld || !gd._fullLayout) return false;
  return gd.querySelectorAll('.scatterlayer .trace').length > 0;
}"""
FIGURE_COUNTS = """() => {
  const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  const l = gd.layout || {};
  return {traces: gd.data.length, shapes: (l.shapes || []).length,
          annotations: (l.annotations || []).length,
          points: gd.data.reduce((n, t) => n + ((t.x || []).length), 0),
          svg_nodes: gd.querySelectorAll('*').length,
          charts: document.querySelectorAll('[data-testid="stPlotlyChart"]').length,
          tables: document.querySelectorAll('[data-testid="stTable"]').length,
          dom_nodes: document.querySelectorAll('*').length};
}"""


def pctl(xs: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank method (p95 of 14 = the 14th smallest)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def _median(xs: Iterable[float]) -> float | None:
    got = [x for x in xs if math.isfinite(x)]
    return round(statistics.median(got), 3) if got else None


def build_db(tmp: Path) -> str:
    from core.access.users import create_user
    from core.store.db import make_engine
    from tests.sample_db import build_sample_db

    url = build_sample_db(tmp / "bench.db", on_sample_day=False)
    engine = make_engine(url)
    create_user(engine, USER, "clinician", PASSWORD, display_name="Bench")
    engine.dispose()
    return url


def start_server(url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "CARTWATCH_DATABASE_URL": url, "CARTWATCH_WARD_TZ": "UTC"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--server.headless=true",
             "--server.address=127.0.0.1", f"--server.port={port}",
             "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                return proc, base
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def patient_ids(url: str) -> list[str]:
    from sqlmodel import select

    from core.store.db import make_engine, session_scope
    from core.store.models import Patient

    engine = make_engine(url)
    with session_scope(engine) as s:
        ids = sorted(s.scalars(select(Patient.patient_id)).all())
    engine.dispose()
    return ids


class Browser:
    """One signed-in browser tab on the server, counting what it sends over the websocket."""

    def __init__(self, pw, base: str) -> None:  # noqa: ANN001
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1500, "height": 1100})
        self.page.set_default_timeout(TIMEOUT_MS)
        self.sent = 0
        self.received: list[float] = []  # perf_counter of each message from the server
        self.page.on("websocket", self._socket)
        self.base = base

    def _socket(self, ws) -> None:  # noqa: ANN001
        ws.on("framesent", lambda _payload: self._count())
        ws.on("framereceived", lambda _payload: self.received.append(time.perf_counter()))

    def _count(self) -> None:
        self.sent += 1

    def settle(self) -> None:
        self.page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
            timeout=TIMEOUT_MS)

    def sign_in(self) -> None:
        page = self.page
        page.goto(f"{self.base}/")
        page.get_by_label("User name").wait_for(timeout=TIMEOUT_MS)
        self.settle()
        page.get_by_label("User name").fill(USER)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        button, signed_in = (page.get_by_role("button", name="Sign in"),
                             page.get_by_role("button", name="Sign out"))
        for _ in range(3):  # a submit cut short by another rerun is dropped: click again
            button.click()
            try:
                signed_in.wait_for(timeout=20_000)
                break
            except PlaywrightTimeout:
                self.settle()
                if not button.is_visible():
                    break
        signed_in.wait_for(timeout=TIMEOUT_MS)
        self.settle()

    def _wait_drawn(self, pid: str, started: float, sent_before: int) -> dict:
        self.page.wait_for_function(DRAWN, arg=pid, polling="raf", timeout=TIMEOUT_MS)
        done = time.perf_counter()
        busy = self.page.evaluate(BUSY)
        # the last message of the run (script finished) ends the server's part
        got = [t for t in self.received if started < t <= done]
        server = (got[-1] - started) if got else float("nan")
        return {"patient": pid, "seconds": round(done - started, 3),
                "server_s": round(server, 3), "browser_busy_ms": busy,
                "messages_sent": self.sent - sent_before}

    def open_timeline(self, pid: str) -> dict:
        """The first patient: "Patient timeline" in the sidebar's page list."""
        self.page.evaluate(MARK_OLD)
        before = self.sent
        link = self.page.get_by_test_id("stSidebarNav").get_by_role("link",
                                                                    name="Patient timeline")
        started = time.perf_counter()
        link.click()
        return self._wait_drawn(pid, started, before)

    def pick(self, pid: str) -> dict:
        """Another patient: type into the sidebar's "Patient" box and press Enter."""
        page = self.page
        self.settle()
        page.evaluate(MARK_OLD)
        box = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Patient")
        box.click()
        box.fill(pid)
        page.get_by_role("option", name=pid, exact=False).first.wait_for()
        page.evaluate("() => { window.__benchMark = performance.now(); }")
        before = self.sent
        started = time.perf_counter()
        page.keyboard.press("Enter")
        return self._wait_drawn(pid, started, before)

    def screenshot(self, path: Path) -> None:
        """The whole page: Streamlit scrolls inside its main pane, so the window is made as
        tall as that pane for the picture (same width: the chart keeps its size)."""
        page = self.page
        tall = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll("
                             "'[data-testid=stMain], [data-testid=stAppViewContainer]'))"
                             ".map(e => e.scrollHeight))")
        size = page.viewport_size or {"width": 1500, "height": 1100}
        page.set_viewport_size({"width": size["width"], "height": int(tall) + 40})
        page.wait_for_timeout(1500)
        self.settle()
        page.screenshot(path=str(path), full_page=True)
        page.set_viewport_size(size)
        page.wait_for_timeout(500)

    def counts(self) -> dict:
        return self.page.evaluate(FIGURE_COUNTS)

    def close(self) -> None:
        self.browser.close()


def top_functions(profile: dict, n: int = 25) -> list[tuple[str, float]]:
    """Self time (ms) by function and script of a DevTools CPU profile."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    self_ms: Counter[str] = Counter()
    deltas = profile.get("timeDeltas", [])
    for sample, dt in zip(profile.get("samples", []), deltas[1:] + [0], strict=True):
        f = nodes[sample]["callFrame"]
        where = f["url"].rsplit("/", 1)[-1] or "(native)"
        self_ms[f"{f['functionName'] or '(anonymous)'} @ {where}:{f['lineNumber']}"] += dt / 1000
    return [(k, round(v, 1)) for k, v in self_ms.most_common(n)]


def by_script(profile: dict) -> dict[str, float]:
    """Self time (ms) by script file, to tell Plotly's bundle from Streamlit's."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    out: Counter[str] = Counter()
    deltas = profile.get("timeDeltas", [])
    for sample, dt in zip(profile.get("samples", []), deltas[1:] + [0], strict=True):
        f = nodes[sample]["callFrame"]
        out[f["url"].rsplit("/", 1)[-1] or f["functionName"] or "(native)"] += dt / 1000
    return {k: round(v, 1) for k, v in out.most_common(12)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=0, help="how many (0 = all)")
    ap.add_argument("--revisits", type=int, default=1, help="rounds of revisits")
    ap.add_argument("--profile", type=Path, metavar="FILE.cpuprofile",
                    help="record a JS CPU profile of the first views into FILE (DevTools "
                    "opens it) and print where the time went")
    ap.add_argument("--shot", type=Path, help="a full-page screenshot of the first patient")
    ap.add_argument("--think", type=float, default=0.0, metavar="S",
                    help="seconds on the ward overview after signing in before the first "
                    "click (a nurse reads it first; 0 = click at once, the worst case)")
    args = ap.parse_args(argv)
    if args.patients == 1:
        ap.error("--patients: at least 2 (a revisit needs another patient in between)")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        url = build_db(tmp)
        ids = patient_ids(url)
        ids = ids[:args.patients] if args.patients else ids
        build_s = time.perf_counter() - t0
        log = tmp / "streamlit.log"
        proc, base = start_server(url, log)
        try:
            with sync_playwright() as pw:
                b = Browser(pw, base)
                try:
                    b.sign_in()
                    b.page.wait_for_timeout(args.think * 1000)
                    cdp = None
                    if args.profile:
                        cdp = b.page.context.new_cdp_session(b.page)
                        cdp.send("Profiler.enable")
                        cdp.send("Profiler.setSamplingInterval", {"interval": 200})
                        cdp.send("Profiler.start")
                    first = [b.open_timeline(ids[0])]
                    figure = b.counts()
                    if args.shot:
                        b.screenshot(args.shot)
                    first += [b.pick(pid) for pid in ids[1:]]
                    if cdp is not None:
                        profile = cdp.send("Profiler.stop")["profile"]
                        args.profile.write_text(json.dumps(profile))
                        print("JS self time by script (ms):", json.dumps(by_script(profile)),
                              file=sys.stderr)
                        for name, ms in top_functions(profile):
                            print(f"{ms:9.1f} ms  {name}", file=sys.stderr)
                    revisit = []
                    for _ in range(args.revisits):
                        # the last one picked is on screen: the round starts from the first
                        revisit += [b.pick(pid) for pid in ids]
                finally:
                    b.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    firsts = [v["seconds"] for v in first]
    again = [v["seconds"] for v in revisit]
    doc = {
        "bench": "timeline_browser", "patients": len(ids), "build_db_s": round(build_s, 2),
        "first_view_s": firsts, "first_view_median_s": round(statistics.median(firsts), 3),
        "first_view_p95_s": round(pctl(firsts, 0.95), 3),
        "revisit_s": again,
        "revisit_median_s": round(statistics.median(again), 3) if again else None,
        "revisit_p95_s": round(pctl(again, 0.95), 3) if again else None,
        "first_view_server_part_median_s": _median(v["server_s"] for v in first),
        "revisit_server_part_median_s": _median(v["server_s"] for v in revisit),
        "first_view_browser_busy_median_ms": _median(v["browser_busy_ms"] for v in first),
        "revisit_browser_busy_median_ms": _median(v["browser_busy_ms"] for v in revisit),
        "messages_sent_per_view": sorted(Counter(v["messages_sent"]
                                                 for v in first + revisit).items()),
        "figure": figure, "think_s": args.think, "target_s": TARGET_S,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "ok": statistics.median(firsts) <= TARGET_S, "date": date.today().isoformat(),
    }
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
