"""The audit trail with filters and a Verify button; readings export by chip, channel and time window."""

from datetime import datetime, time, timedelta, timezone

import streamlit as st

from ui.panel import records, validators
from ui.panel.page import attempt, engine, signed_in

who = signed_in()
db = engine()
st.title("Audit and data")

st.subheader("Audit trail")
if st.button("Verify the trail and the records", icon=":material/verified:", key="verify"):
    report = attempt(lambda: records.verify(db, who))
    if report is not None and report.intact:
        anchored = (
            "not anchored yet" if report.anchored_seq is None else f"head anchored at entry {report.anchored_seq}"
        )
        st.success(
            f"Intact: {report.entries_checked} entries, last hash {report.last_hash[:16]}…, {anchored}; "
            f"{report.rows_checked} regulated rows match their entries"
        )
    elif report is not None:
        for line in records.problem_lines(report):
            st.error(line)
a, b, c, d = st.columns(4)
actor = a.selectbox("Actor", ["(any)", *records.audit_actors(db)], key="audit_actor")
typed = b.text_input("Action contains", key="audit_action")
entity = c.selectbox("Entity", ["(any)", *records.audit_entities(db)], key="audit_entity")
since = d.date_input("Since (UTC)", value=None, key="audit_since")
action = attempt(lambda: validators.free_text("Action contains", typed))
chosen = records.AuditFilter(
    actor=None if actor == "(any)" else actor,
    action_contains=action or "",
    entity=None if entity == "(any)" else entity,
    since_utc_s=None if since is None else datetime.combine(since, time(), timezone.utc).timestamp(),
)
trail = records.audit_trail(db, chosen)
st.caption(f"newest {len(trail)} matching entries (at most {records.AUDIT_PAGE_ROWS})")
st.dataframe(trail, hide_index=True, width="stretch")

st.subheader("Readings export")
channels = records.chip_channels(db)
if channels.empty:
    st.info("No channels in the store yet.")
    st.stop()
chip = st.selectbox("Chip", sorted(channels["chip"].unique()), key="export_chip")
of_chip = channels[channels["chip"] == chip]
names = st.multiselect("Channels", list(of_chip["name"]), default=list(of_chip["name"]), key="export_channels")
ids = [int(i) for i in of_chip[of_chip["name"].isin(names)]["id"]]
first, last = records.reading_span(db, ids)
if not ids or first is None:
    st.info("No readings for this selection.")
    st.stop()
low = datetime.fromtimestamp(first, timezone.utc).replace(tzinfo=None)  # the slider works in naive UTC
high = datetime.fromtimestamp(last, timezone.utc).replace(tzinfo=None) + timedelta(seconds=1)
start, end = st.slider(
    "Time window (UTC)",
    min_value=low,
    max_value=high,
    value=(max(low, high - timedelta(days=1)), high),
    format="YYYY-MM-DD HH:mm",
    key="export_window",
)
t0, t1 = start.replace(tzinfo=timezone.utc).timestamp(), end.replace(tzinfo=timezone.utc).timestamp()
st.caption(f"{records.count_readings(db, ids, t0, t1):,} readings in the window")
left, right = st.columns(2)
stem = f"{chip}-{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}"
left.download_button(
    "Download CSV",
    lambda: records.export_readings(db, who, ids, t0, t1, "csv"),
    file_name=f"{stem}.csv",
    mime="text/csv",
    on_click="ignore",
)
right.download_button(
    "Download Parquet",
    lambda: records.export_readings(db, who, ids, t0, t1, "parquet"),
    file_name=f"{stem}.parquet",
    mime="application/octet-stream",
    on_click="ignore",
)
