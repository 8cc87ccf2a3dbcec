"""What every page starts with: the store, the signed-in user, and errors shown as messages."""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

import streamlit as st
from sqlalchemy import Engine

from calibration.errors import CalibrationError
from store.errors import StoreError
from twin.errors import TwinError
from ui.panel.auth import SignedIn, current, end_session
from ui.panel.context import engine_for
from ui.panel.errors import PanelError, SessionEnded

T = TypeVar("T")
USER_KEY = "user"
FLASH_KEY = "flash"
ENDED_KEY = "session_ended"  # why the last session ended, shown once on the sign-in page
SHOWN_ERRORS = (PanelError, StoreError, TwinError, CalibrationError)
_log = logging.getLogger(__name__)


def engine() -> Engine:
    try:
        return engine_for()
    except StoreError as exc:
        st.error(f"The lab store cannot be opened: {exc}")
        st.stop()
        raise  # st.stop raises; this line only satisfies type checkers


def user() -> SignedIn | None:
    return st.session_state.get(USER_KEY)


def refresh_user() -> SignedIn | None:
    """The signed-in user re-read from the store (on every run of the app, not only at sign-in);
    a session revoked since (deactivated, another role or password) ends here."""
    who = user()
    if who is None:
        return None
    try:
        fresh = current(engine(), who)
    except SessionEnded as exc:
        close_session(who, str(exc))
        return None
    st.session_state[USER_KEY] = fresh
    return fresh


def close_session(who: SignedIn, reason: str) -> None:
    end_session(engine(), who, reason)
    st.session_state.pop(USER_KEY, None)
    st.session_state[ENDED_KEY] = reason[:1].upper() + reason[1:] + "."


def signed_in() -> SignedIn:
    """The signed-in user as the store has them now; a signed-out visitor (or one whose session was
    revoked, told why) sees nothing but the request to sign in."""
    who = refresh_user()
    if who is None:
        ended = st.session_state.pop(ENDED_KEY, None)
        st.warning(ended or "Sign in to see the panel.")
        st.stop()
    return who


def attempt(action: Callable[[], T], success: str | None = None) -> T | None:
    """Run a user action; a refusal becomes an error message on the page, not a traceback.

    A revoked session ends and the whole app reruns (to the sign-in page with the reason). Anything
    else that goes wrong is a bug: it is logged with its traceback on the server, and the page says so
    in one line.
    """
    try:
        result = action()
    except SessionEnded as exc:
        if (who := user()) is not None:
            close_session(who, str(exc))
        st.rerun()
    except SHOWN_ERRORS as exc:
        st.error(str(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - the last resort: never a traceback on the page
        _log.exception("panel action failed")
        st.error(
            f"This failed inside ChipTwin ({type(exc).__name__}); the details are in the panel's log. "
            "Check what you typed, and report it if it happens again."
        )
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
