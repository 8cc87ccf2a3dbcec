"""Every channel of every chip of a run's rig, downsampled in the database and refreshed every few
seconds; doses and samples marked; the twin's forecast (latest fit, 90 % band) over the assays;
pause / resume / abort requests and their state."""

import os

import streamlit as st

from ui.panel import charts, fit_view, live, units_view
from ui.panel.page import attempt, engine, signed_in
from ui.run_clock import RunClock

FINISHED = ("done", "aborted", "failed")
REFRESH_S = float(os.environ.get("CHIPTWIN_PANEL_REFRESH_S", "3"))
who = signed_in()
db = engine()
st.title("Live run")

runs = live.runs(db)
if runs.empty:
    st.info("No protocol run in the store yet; `chiptwin run` starts one (the runner comes with issue #6).")
    st.stop()
labels = {row.id: f"run {row.id} on {row.rig} — {row.state}" for row in runs.itertuples()}
run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="live_run")
run = runs.set_index("id").loc[run_id]
clock = RunClock.of(run)  # a simulated run is read in run time, a real one in dates
st.caption(f"Run {run_id} started {clock.started_text()}")
span_name = st.segmented_control("Window", list(live.SPANS_S), default="last 6 h", key="live_span") or "last 6 h"
auto = st.toggle(f"Refresh every {REFRESH_S:g} s", value=True, key="live_auto")
every = REFRESH_S if auto else None


@st.fragment(run_every=every)
def controls() -> None:
    pause, resume, abort, confirm = st.columns([1, 1, 1, 2])
    kind = None
    can = who.can_control and run.state not in FINISHED  # a finished run has no runner to answer
    if pause.button("Pause", icon=":material/pause:", disabled=not can, key="pause"):
        kind = "pause"
    if resume.button("Resume", icon=":material/play_arrow:", disabled=not can, key="resume"):
        kind = "resume"
    sure = confirm.checkbox("I mean to abort this run", key="abort_confirm", disabled=not can)
    if abort.button("Abort", icon=":material/stop:", disabled=not (can and sure), key="abort"):
        kind = "abort"
    # fixed slots: a message that comes and goes must not shift the table (a stale copy of it
    # would show until the fragment's next run ends)
    message, caption = st.empty(), st.empty()
    mine = st.session_state.setdefault("live_my_requests", {})  # run id → the last request this visitor sent
    if kind:
        request_id = attempt(lambda: live.request_control(db, who, int(run_id), kind))
        if request_id is not None:
            mine[int(run_id)] = request_id
    requests = live.requests_of(db, int(run_id))
    # the confirmation stays until the runner answers (the refresh every second must not wipe it)
    sent = mine.get(int(run_id))
    if (pending := live.pending_kind(requests, sent)) is not None:
        message.success(f"{pending} requested (request {sent}); it stays pending until the runner acknowledges it.")
    if (status := live.request_status(requests)) is not None:
        caption.caption(status)
    st.dataframe(requests, hide_index=True, width="stretch")


@st.fragment(run_every=every)
def plots() -> None:
    end = live.latest_time(db, int(run.rig_id))
    if end is None:
        st.info("No readings on this rig yet.")
        return
    caches = st.session_state.setdefault("live_windows", {})  # chip id → live.LiveWindow, refreshed by its tail
    chips = live.rig_chips(db, int(run.rig_id))
    forecast_key = fit_view.forecast_key(db, int(run_id))  # new fit, dose or assay: redraw the forecasts
    for stale in set(caches) - set(chips["id"].astype(int)):
        del caches[stale]  # another run's rig: its chips' windows go
    for chip in chips.itertuples():
        cached = live.refresh_window(db, caches.get(int(chip.id)), int(chip.id), end, live.SPANS_S[span_name])
        caches[int(chip.id)] = cached
        windows = cached.windows
        st.subheader(f"{windows.chip} ({windows.organ})")
        columns = st.columns(2)
        for i, channel in enumerate(windows.channels):
            if channel.frame.empty:  # an empty chart says nothing: say why there is nothing
                columns[i % 2].info(live.why_empty(channel, span_name))
                continue
            columns[i % 2].vega_lite_chart(
                charts.channel_data(channel, clock),
                charts.channel_spec(channel, windows.marks, clock=clock),
                width="stretch",
            )
        twin_forecast(windows.chip, end, forecast_key)


def twin_forecast(chip: str, end_utc_s: float, key: tuple) -> None:
    """The latest fit's forecast for the chip with its band, over the assays so far; recomputed
    only when ``key`` changes (a fit, dose or assay result arrived), not on every refresh."""
    cache = st.session_state.setdefault("live_forecasts", {})
    if cache.get(chip, (None,))[0] != key:
        cache[chip] = (key, attempt(lambda: fit_view.forecast(db, int(run_id), chip, end_utc_s)))
    found = cache[chip][1]
    if found is None:
        return
    fit_id, view = found
    units = units_view.observable_units(units_view.model_of_fit(db, fit_id))
    observables = sorted(view.data["observable"].unique())
    for column, observable in zip(st.columns(2) * len(observables), observables):
        column.altair_chart(
            charts.fit_band(
                view.curves,
                view.data,
                observable,
                view.has_band,
                f"{chip} {observable}: twin forecast (fit {fit_id}) and assays",
                unit=units.get(observable),
            ),
            width="stretch",
        )


st.subheader(f"Requests to the runner — run {run_id} is {run.state}")
controls()
plots()
