"""ChipTwin control panel — `chiptwin panel` serves this file with `streamlit run`.

A signed-out visitor gets the sign-in form and nothing else (no page is even registered);
once signed in, the pages of the lab, the twin and the records, with what the user's role allows.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.panel import sign_in_form
from ui.panel.auth import sign_out
from ui.panel.context import warm_up_in_background
from ui.panel.page import USER_KEY, engine, refresh_user, user

HERE = Path(__file__).resolve().parent


def _page(file: str, title: str, icon: str, **options) -> st.Page:
    return st.Page(str(HERE / "pages" / file), title=title, icon=icon, **options)


def _pages() -> dict[str, list[st.Page]]:
    return {
        "Lab": [
            _page("overview.py", "Overview", ":material/dashboard:", default=True),
            _page("live.py", "Live run", ":material/monitoring:"),
            _page("proposals.py", "Proposals", ":material/approval:"),
            _page("review.py", "Model review", ":material/query_stats:"),
            _page("runs.py", "Runs", ":material/playlist_play:"),
        ],
        "Twin": [
            _page("simulator.py", "Body-on-chip simulator", ":material/science:"),
            _page("predictor.py", "Drug response predictor", ":material/person:"),
            _page("population.py", "Virtual population", ":material/groups:"),
            _page("tdm.py", "Learning patient twin", ":material/timeline:"),
        ],
        "Records": [_page("audit.py", "Audit and data", ":material/policy:")],
    }


def _sidebar() -> None:
    who = user()
    with st.sidebar:
        st.caption(f"Signed in as **{who.label}**")
        if st.button("Sign out", icon=":material/logout:", key="sign_out"):
            sign_out(engine(), who)
            del st.session_state[USER_KEY]
            st.rerun()


# The favicon is a file of ours: a ":material/…:" or emoji icon is fetched from a font CDN (offline labs).
st.set_page_config(page_title="ChipTwin panel", page_icon=str(HERE / "assets" / "favicon.svg"), layout="wide")
warm_up_in_background()
if refresh_user() is None:  # every request re-reads the user: a revoked session ends here
    sign_in_form.render()
    st.stop()
navigation = st.navigation(_pages())
_sidebar()
navigation.run()
