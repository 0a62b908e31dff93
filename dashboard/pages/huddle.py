"""Huddle screen: a wall display of every active patient, masked to bed and initials.

Bookmark e.g. /huddle?ward=main&theme=dark&interval=60&page_size=8&stale_hours=24
"""

import math
from datetime import datetime

import streamlit as st

from dashboard import resources
from dashboard.huddle_wall import huddle_params, page_css, wall_html
from dashboard.ward_view import ward_notices

settings = resources.get_settings()
engine = resources.get_engine()
params = huddle_params(st.query_params)
st.markdown(page_css(params.theme), unsafe_allow_html=True)


@st.fragment(run_every=params.interval)
def wall() -> None:
    version = resources.data_version(engine)  # a write by any process: a miss on this tick
    snap = resources.huddle_snapshot(engine, settings.database_url, version,
                                     settings.ward_tz, params.ward, params.stale_hours)
    monitor = resources.monitor_status(engine, settings)
    tiles = snap["tiles"]
    pages = max(1, math.ceil(len(tiles) / params.page_size))
    page = st.session_state.get("huddle_page", -1) + 1  # advances on every refresh
    st.session_state["huddle_page"] = page
    page %= pages
    shown = tiles[page * params.page_size:(page + 1) * params.page_size]
    now = datetime.now(settings.tz)
    sub = (f"{len(tiles)} active · page {page + 1}/{pages} · updated {now:%H:%M}"
           f" · every {params.interval} s")
    st.markdown(wall_html(
        shown, params.theme, header=f"CAR-T huddle · {now:%a %d %b}", sub=sub,
        notices=ward_notices(monitor, settings.tz, snap["freshness"]),
        footer=f"{resources.SCREENING_NOTE} Sorted by concern. Initials and bed only.",
        page_size=params.page_size),
        unsafe_allow_html=True)
    if not tiles:
        st.markdown("## No active patients.")


wall()
