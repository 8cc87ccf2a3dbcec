"""The only thing a signed-out visitor sees: the sign-in form (`chiptwin user add` creates users)."""

from __future__ import annotations

import streamlit as st
from sqlalchemy import make_url

from store.engine import resolve_url
from ui.panel.auth import sign_in
from ui.panel.page import ENDED_KEY, USER_KEY, engine


def render() -> None:
    st.title("ChipTwin")
    if ended := st.session_state.pop(ENDED_KEY, None):
        st.warning(ended, icon=":material/lock_clock:")
    st.write("Organ-on-chip rigs with a calibrated twin in the loop. Sign in to watch, steer and review.")
    with st.form("sign_in"):
        username = st.text_input("Username", key="username")
        password = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        who = sign_in(engine(), username, password)
        if who is None:
            st.error("Unknown user, inactive user, or wrong password.")
        else:
            st.session_state[USER_KEY] = who
            st.rerun()
    st.caption(
        f"No account? An administrator adds one with `chiptwin user add NAME --role scientist --db {_store_in_use()}`."
    )


def _store_in_use() -> str:
    """The store this panel serves, as `--db` takes it (the demo's is not ./chiptwin.db); no password."""
    url = resolve_url(None)
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return make_url(url).render_as_string(hide_password=True)
