"""Each fit (each chip's, for a run's calibrate step): parameters with intervals, every warning, data
against the prediction with its band, residuals, correlations, profile likelihoods on request, the
learning curve, and exports.

A profile runs in a worker thread of the panel (``ui.panel.profile_worker``): the page shows its
progress, refreshed every ``CHIPTWIN_PANEL_PROFILE_REFRESH_S`` s, offers Cancel, and the worker stops
by itself when this browser session stops asking about it."""

import os
import uuid

import streamlit as st

from calibration.uncertainty.profile import CHI2_95
from ui.panel import charts, fit_charts, fit_view, profile_worker, review, units_view
from ui.panel.auth import require
from ui.panel.page import attempt, engine, signed_in
from ui.panel.records import export_readings
from ui.report.build import run_report_pdf

PROFILE_REFRESH_S = float(os.environ.get("CHIPTWIN_PANEL_PROFILE_REFRESH_S", "1"))

who = signed_in()
db = engine()
st.title("Model review")

fits = review.fits(db)
if fits.empty:
    st.info("No fit in the store yet; calibration writes one at each calibrate step of a run.")
    st.stop()
labels = {
    f.id: f"fit {f.id} — {f.model} {f.method}, run {f.run_id}, {f.created:%Y-%m-%d %H:%M} UTC"
    for f in fits.itertuples()
}
fit_id = st.selectbox("Fit", list(labels), format_func=labels.get, key="review_fit")
row = review.fit_row(db, fit_id)
per_chip = fit_view.chip_records(review.record_of(row))
chip = next(iter(per_chip))
if len(per_chip) > 1:
    chip = st.selectbox(
        "Chip (each chip has its own fit: cells from different donors)", list(per_chip), key="review_chip"
    )
record = per_chip[chip]

summary = review.summary_of(row, record, chip)
for warning in review.warnings_of(summary, record) + units_view.high_correlations(*review.correlation(record)):
    st.warning(warning, icon=":material/warning:")
cols = st.columns(4)
cols[0].metric("converged", "yes" if summary.converged else "NO")
cols[1].metric("−2LL", "—" if summary.minus2ll is None else f"{summary.minus2ll:.4g}")
cols[2].metric("AIC", "—" if summary.aic is None else f"{summary.aic:.4g}")
cols[3].metric("observations", record.get("n_observations", "—"))

st.subheader("Parameters")
st.dataframe(units_view.with_units(review.parameter_table(record), row.model), hide_index=True, width="stretch")
observable_units, theta_units = units_view.observable_units(row.model), units_view.parameter_units(row.model)

st.subheader("Data and prediction")
view = attempt(lambda: fit_view.review(db, row, chip, record))
if view is not None:
    if not view.has_band:
        st.caption("No band: the fit has no covariance (see the warnings above).")
    observables = sorted(view.data["observable"].unique())
    for column, observable in zip(st.columns(len(observables)), observables):
        column.altair_chart(
            charts.fit_band(view.curves, view.data, observable, view.has_band, unit=observable_units.get(observable)),
            width="stretch",
        )
    st.subheader("Residuals")
    st.altair_chart(charts.residuals(view.data), width="stretch")
    st.caption(
        "Weighted residuals (data − prediction) / SD: a fit that describes the data scatters about 0, "
        "mostly within ±2, with no trend in time."
    )
    st.subheader("Observed against predicted")
    for column, observable in zip(st.columns(len(observables)), observables):
        column.altair_chart(
            fit_charts.observed_vs_predicted(view.data, observable, observable_units.get(observable)), width="stretch"
        )

names, matrix = review.correlation(record)
st.subheader("Correlation of the estimates")
if matrix is None:
    st.warning("No correlation matrix: the covariance step failed, so the intervals above are missing too.")
else:
    st.altair_chart(charts.correlation_heatmap(names, matrix))

st.subheader("Profile likelihood")
profiles = st.session_state.setdefault("review_profiles", {})  # (fit, chip, parameter) → Profile
ended = st.session_state.setdefault("review_profile_ended", [])  # how unfinished profiles ended, shown once
browser = st.session_state.setdefault("review_session", uuid.uuid4().hex)  # this browser session's jobs
left, right = st.columns([2, 1])
name = left.selectbox("Parameter", list(record.get("theta") or {}), key="review_profile_name")
busy = any(job.status().running for job in profile_worker.WORKERS.of_session(browser))
if right.button(
    "Compute profile",
    key="review_profile_go",
    disabled=busy or not who.can_control,
    help="Runs in the background: each point re-fits the other parameters (a chip's points together)"
    + ("" if who.can_control else f" (your role, {who.role}, may not compute)"),
):

    def start_profile():
        require(db, who, "control")  # the role as the store has it now
        task = fit_view.profile_task(db, row, chip, record, name)
        return profile_worker.WORKERS.start((browser, fit_id, chip, name), task)

    if attempt(start_profile) is not None:
        st.rerun()  # drawn again: Compute disabled, the progress refreshing


def profile_progress() -> None:
    """The session's profile job: progress and Cancel while it runs; when it ends, the whole page again."""
    for job in profile_worker.WORKERS.of_session(browser):
        _, job_fit, job_chip, job_name = job.key
        status = job.status()  # a heartbeat: this session still looks
        if status.running:
            total = status.total or 1
            st.progress(
                min(status.done / total, 1.0),
                text=f"profiling {job_name} (fit {job_fit}): {status.done} of at most {total} points, "
                f"{status.elapsed_s:.0f} s",
            )
            if st.button("Cancel", key="review_profile_cancel", icon=":material/stop:"):
                job.cancel()
            st.caption("Cancel stops after the scoring round being computed.")
            continue
        profile_worker.WORKERS.forget(job.key)
        if status.state == "done":
            profiles[(job_fit, job_chip, job_name)] = status.result
        elif status.state == "failed":
            ended.append(("error", f"profile of {job_name} failed: {status.error}"))
        else:
            ended.append(
                ("info", f"profile of {job_name} {status.state} after {status.done} points ({status.elapsed_s:.0f} s)")
            )
        st.rerun()  # the result (or why there is none) is drawn by the page


st.fragment(run_every=PROFILE_REFRESH_S if busy else None)(profile_progress)()
while ended:
    kind, message = ended.pop(0)
    getattr(st, kind)(message)
if (shown := profiles.get((fit_id, chip, name))) is not None:
    low, high = shown.interval
    st.altair_chart(
        charts.profile(shown.values.tolist(), shown.delta.tolist(), name, CHI2_95, theta_units.get(name)),
        width="stretch",
    )
    st.caption(
        f"95 % profile interval of {name}: [{'open' if low is None else f'{low:.4g}'}, "
        f"{'open' if high is None else f'{high:.4g}'}] {theta_units.get(name, '')} (Δ(−2LL) = {CHI2_95:.2f})"
        + "".join(f"; {note}" for note in shown.notes)
    )

st.subheader("Learning curve (fits of the same run)")
curve = review.learning_frame(db, row.run_id, row.model, chip)
curve["parameter"] = [f"{p} ({theta_units.get(p, '?')})" for p in curve["parameter"]]  # facet titles carry the unit
if curve["fit"].nunique() < 2:
    st.info("Only one fit of this model in this run so far.")
st.altair_chart(charts.learning_curve(curve))

st.subheader("Export")
left, middle, right = st.columns(3)
left.download_button(
    "Fit record (JSON)",
    review.fit_json(row),
    file_name=f"fit-{fit_id}.json",
    mime="application/json",
    on_click="ignore",
)
if row.run_id is None:
    st.caption("This fit belongs to no run; export readings from Audit and data.")
else:
    rig_id, start, end = review.run_span(db, row.run_id)
    channels = review.rig_channel_ids(db, rig_id)
    middle.download_button(
        "Run readings (CSV)",
        lambda: export_readings(db, who, channels, start, end, "csv"),
        file_name=f"run-{row.run_id}-readings.csv",
        mime="text/csv",
        on_click="ignore",
    )
    right.download_button(
        "Run readings (Parquet)",
        lambda: export_readings(db, who, channels, start, end, "parquet"),
        file_name=f"run-{row.run_id}-readings.parquet",
        mime="application/octet-stream",
        on_click="ignore",
    )
    st.download_button(
        "Study report (PDF)",
        lambda: run_report_pdf(db, row.run_id),
        key="review_report_pdf",
        file_name=f"run-{row.run_id}-report.pdf",
        mime="application/pdf",
        on_click="ignore",
        help="The same report as `chiptwin report`: doses, assays, alarms, fits, decisions, audit",
    )
