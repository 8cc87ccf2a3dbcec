"""Each fit: parameters with intervals, every warning, correlations, the learning curve, and exports."""

import streamlit as st

from ui.panel import charts, review
from ui.panel.page import engine, signed_in
from ui.panel.records import export_readings

who = signed_in()
db = engine()
st.title("Model review")

fits = review.fits(db)
if fits.empty:
    st.info("No fit in the store yet; calibration writes one at each calibrate step of a run.")
    st.stop()
labels = {f.id: f"fit {f.id} — {f.model} {f.method}, run {f.run_id}, {f.created:%Y-%m-%d %H:%M} UTC"
          for f in fits.itertuples()}
fit_id = st.selectbox("Fit", list(labels), format_func=labels.get, key="review_fit")
row = review.fit_row(db, fit_id)
record = review.record_of(row)

for warning in review.warnings_of(row, record):
    st.warning(warning, icon=":material/warning:")
cols = st.columns(4)
cols[0].metric("converged", "yes" if row.converged else "NO")
cols[1].metric("−2LL", "—" if row.minus2ll is None else f"{row.minus2ll:.4g}")
cols[2].metric("AIC", "—" if row.aic is None else f"{row.aic:.4g}")
cols[3].metric("observations", record.get("n_observations", "—"))

st.subheader("Parameters")
st.dataframe(review.parameter_table(record), hide_index=True, width="stretch")

names, matrix = review.correlation(record)
st.subheader("Correlation of the estimates")
if matrix is None:
    st.warning("No correlation matrix: the covariance step failed, so the intervals above are missing too.")
else:
    st.altair_chart(charts.correlation_heatmap(names, matrix))

st.subheader("Learning curve (fits of the same run)")
curve = review.learning_frame(db, row.run_id, row.model)
if curve["fit"].nunique() < 2:
    st.info("Only one fit of this model in this run so far.")
st.altair_chart(charts.learning_curve(curve))

st.subheader("Export")
left, middle, right = st.columns(3)
left.download_button("Fit record (JSON)", review.fit_json(row), file_name=f"fit-{fit_id}.json",
                     mime="application/json", on_click="ignore")
if row.run_id is None:
    st.caption("This fit belongs to no run; export readings from Audit and data.")
else:
    rig_id, start, end = review.run_span(db, row.run_id)
    channels = review.rig_channel_ids(db, rig_id)
    middle.download_button("Run readings (CSV)", lambda: export_readings(db, who, channels, start, end, "csv"),
                           file_name=f"run-{row.run_id}-readings.csv", mime="text/csv", on_click="ignore")
    right.download_button("Run readings (Parquet)", lambda: export_readings(db, who, channels, start, end, "parquet"),
                          file_name=f"run-{row.run_id}-readings.parquet", mime="application/octet-stream",
                          on_click="ignore")
