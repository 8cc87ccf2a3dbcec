"""What every page starts with: the store, the signed-in user, and errors shown as messages."""

from __future__ import annotations

from typing import Callable, TypeVar

import streamlit as st
from sqlalchemy import Engine

from store.errors import StoreError
from twin.errors import TwinError
from ui.panel.auth import SignedIn
from ui.panel.context import engine_for
from ui.panel.errors import PanelError

T = TypeVar("T")
USER_KEY = "user"
FLASH_KEY = "flash"
SHOWN_ERRORS = (PanelError, StoreError, TwinError)


def engine() -> Engine:
    try:
        return engine_for()
    except StoreError as exc:
        st.error(f"The lab store cannot be opened: {exc}")
        st.stop()
        raise  # st.stop raises; this line only satisfies type checkers


def user() -> SignedIn | None:
    return st.session_state.get(USER_KEY)


def signed_in() -> SignedIn:
    """The signed-in user; a signed-out visitor sees nothing but the request to sign in."""
    who = user()
    if who is None:
        st.warning("Sign in to see the panel.")
        st.stop()
    return who


def attempt(action: Callable[[], T], success: str | None = None) -> T | None:
    """Run a user action; a refusal becomes an error message on the page, not a traceback."""
    try:
        result = action()
    except SHOWN_ERRORS as exc:
        st.error(str(exc))
        return None
    if success:
        st.success(success)
    return result


def flash(message: str) -> None:
    """A success message that survives the rerun after an action."""
    st.session_state[FLASH_KEY] = message


def show_flash() -> None:
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        st.success(message)
