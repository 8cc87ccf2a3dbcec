"""Rigs, chips, instruments and their connection states, latest readings, open alarms, waiting proposals."""

import streamlit as st

from store.lease import lease_rows
from ui.panel import lab, run_times, units_view
from ui.panel.page import attempt, engine, flash, show_flash, signed_in

who = signed_in()
db = engine()
st.title("Overview")
show_flash()

rigs, chips, instruments = lab.rigs(db), lab.chips(db), lab.instruments(db)
alarms, proposals = lab.open_alarms(db), lab.pending_proposals(db)
cols = st.columns(5)
cols[0].metric("rigs", len(rigs))
cols[1].metric("chips", len(chips))
cols[2].metric("instruments not ok", int(instruments["connection_state"].isin(lab.TROUBLE).sum()))
cols[3].metric("open alarms", len(alarms))
cols[4].metric("proposals waiting", len(proposals))

# One runner per rig (store.lease): who drives each rig now, and whether its heartbeat is fresh.
for held in lease_rows(db, rigs["name"].tolist()):
    if not held["held"]:
        st.caption(f"🔓 rig {held['rig']}: free")
        continue
    state = "🔴 expired — its runner looks gone" if held["expired"] else "🟢 alive"
    st.caption(
        f"🔒 rig {held['rig']}: held by {held['holder']} since {held['since_utc']}; "
        f"heartbeat {held['heartbeat_age_s']:.0f} s ago ({state})"
    )

left, right = st.columns(2)
with left:
    st.subheader("Chips")
    st.dataframe(chips.drop(columns=["id"]), hide_index=True, width="stretch")
with right:
    st.subheader("Instruments")
    st.dataframe(
        instruments[["rig", "name", "driver", "state", "last contact", "address"]], hide_index=True, width="stretch"
    )
    st.caption(
        "State as the runner last saw it (ok, degraded: recent failures; reconnecting; lost: retried at the "
        "longest back-off); last contact: its newest reading, on the run's clock."
    )

st.subheader("Latest readings")
st.dataframe(
    units_view.readings_with_units(run_times.readable_readings(db, lab.latest(db)).drop(columns=["channel_id"])),
    hide_index=True,
    width="stretch",
    column_config={"age_s": st.column_config.NumberColumn("age (s)", format="%.0f")},
)

st.subheader("Open alarms")
if alarms.empty:
    st.success("No open alarms.")
for alarm in alarms.itertuples():
    icon = {"critical": "🔴", "warning": "🟠"}.get(alarm.severity, "🔵")
    with st.expander(f"{icon} {alarm.severity}: {alarm.message} — {alarm.source}, {alarm.time:%Y-%m-%d %H:%M:%S} UTC"):
        with st.form(f"ack_{alarm.id}"):
            comment = st.text_input("What was done (required)", key=f"ack_comment_{alarm.id}")
            if st.form_submit_button("Acknowledge", disabled=not who.can_control):
                if attempt(lambda: lab.acknowledge_alarm(db, who, alarm.id, comment)) is not None:
                    flash(f"Alarm {alarm.id} acknowledged.")
                    st.rerun()

st.subheader("Proposals waiting for approval")
if proposals.empty:
    st.info("Nothing waits for approval.")
else:
    st.dataframe(
        proposals[["id", "run_id", "fit_id", "expected_information_gain", "created"]], hide_index=True, width="stretch"
    )
    st.page_link("pages/proposals.py", label="Decide on proposals", icon=":material/approval:")
