"""Every rig: who holds it (its runner's lease), its current run and step, and its queue; a scientist
queues a protocol on a rig (upload or paste, optional not-before time) and cancels a queued entry."""

from datetime import datetime, time, timezone

import pandas as pd
import streamlit as st

from ui.panel import rig_queue
from ui.panel.page import attempt, engine, flash, show_flash, signed_in
from ui.run_clock import clock_of, date_text

who = signed_in()
db = engine()
st.title("Runs")
show_flash()
may_queue = rig_queue.may_queue(db, who)
if not may_queue:
    st.info(f"Your role ({who.role}) may look at the rigs' runs and queues but not queue or cancel protocols.")

rigs = rig_queue.rig_runs(db)
if not rigs:
    st.info("No rig is known yet: a lab supervisor registers its rig when it starts (`chiptwin lab serve`).")
for rig in rigs:
    with st.container(border=True):
        st.subheader(f"Rig {rig.name}")
        holder = rig.holder
        st.caption(
            "🔓 free" if holder is None else f"🔒 held by {holder.who()} since {date_text(holder.acquired_utc_s)}"
        )
        if rig.run is None:
            st.caption("no run in progress")
        else:
            clock = clock_of(rig.run)
            started = date_text(rig.run.started_wall_utc_s) if rig.run.started_wall_utc_s is not None else "—"
            simulated = f" (simulated at {clock.rate:g}× real time)" if clock is not None and clock.simulated else ""
            st.markdown(
                f"**Run {rig.run.id}** — {rig.run.state} · started {started}{simulated}"
                + (f" · {rig.step}" if rig.step else "")
            )
        if rig.queue:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "entry": e.id,
                            "protocol": e.protocol_name,
                            "state": e.state.value,
                            "queued by": e.queued_by,
                            "queued": date_text(e.queued_utc_s),
                            "not before": date_text(e.not_before_utc_s)
                            if e.not_before_utc_s is not None
                            else "as soon as the rig is free",
                        }
                        for e in rig.queue
                    ]
                ),
                hide_index=True,
                width="stretch",
            )
        else:
            st.caption("queue: empty")

if may_queue and rigs:
    st.subheader("Queue a protocol")
    with st.form("queue_form", clear_on_submit=False):
        rig_name = st.selectbox("Rig", [r.name for r in rigs], key="queue_rig")
        upload = st.file_uploader("Protocol file (TOML)", type=["toml"], key="queue_file")
        pasted = st.text_area("…or paste the protocol", key="queue_text", height=160)
        later = st.checkbox("Not before a given time (UTC)", key="queue_later")
        day = st.date_input("Not before: date (UTC)", key="queue_day")
        at = st.time_input("Not before: time (UTC)", value=time(0, 0), key="queue_time")
        if st.form_submit_button("Queue", icon=":material/playlist_add:"):
            text = upload.getvalue().decode("utf-8") if upload is not None else pasted
            name = upload.name if upload is not None else "pasted.toml"
            not_before = datetime.combine(day, at, tzinfo=timezone.utc).timestamp() if later else None
            entry = attempt(
                lambda: rig_queue.queue_protocol(
                    db, who, rig_name=rig_name, protocol_text=text, protocol_name=name, not_before_utc_s=not_before
                )
            )
            if entry is not None:
                flash(f"Queued {name} on rig {rig_name} as entry {entry}.")
                st.rerun()

    open_ids = [e.id for r in rigs for e in r.queue if e.state.value == "queued"]
    if open_ids:
        st.subheader("Cancel a queued entry")
        with st.form("cancel_form"):
            entry_id = st.selectbox("Entry", open_ids, key="cancel_entry")
            reason = st.text_input("Reason (kept in the audit trail)", key="cancel_reason")
            if st.form_submit_button("Cancel entry", icon=":material/playlist_remove:"):
                if attempt(lambda: rig_queue.cancel_entry(db, who, int(entry_id), reason)) is not None:
                    flash(f"Queue entry {entry_id} cancelled.")
                    st.rerun()
