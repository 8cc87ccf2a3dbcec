"""Each pending proposal: its predicted outcome with the 90 % band, why it was chosen (what it is expected
to teach), its safety checks against the rig file, the design; approve or reject with a signature.
Below, the history: every proposal of every run with its decision, and executed ones' outcome."""

import streamlit as st

from store.repositories import runs
from ui.panel import charts, decisions, history, lab, outcome, units_view
from ui.panel.page import attempt, engine, flash, show_flash, signed_in
from ui.run_clock import RunClock

who = signed_in()
db = engine()
st.title("Proposals")
show_flash()
if not who.can_approve:
    st.info(f"Your role ({who.role}) may look at proposals but not approve or reject them.")

pending = lab.pending_proposals(db)
clocks = {r.id: RunClock.of(r) for r in runs.listing(db)}  # a proposal's time is on its run's clock
if pending.empty:
    st.success("No proposal waits for a decision.")
for proposal in pending.itertuples():
    gain = proposal.expected_information_gain
    with st.container(border=True):
        st.subheader(f"Proposal {proposal.id}")
        st.caption(
            f"run {proposal.run_id} · fit {proposal.fit_id} · "
            f"created {clocks[int(proposal.run_id)].text(float(proposal.created_utc_s))} · "
            f"expected information gain {'—' if gain is None else f'{gain:.3g}'}"
        )
        bands = outcome.bands(proposal.predicted_json)
        if bands.empty:  # a proposal without the propose step's outcome document
            st.markdown("**Predicted outcome**")
            st.json(decisions.pretty_json(proposal.predicted_json), expanded=False)
        else:
            chips = list(dict.fromkeys(bands["chip"]))
            for column, chip in zip(st.columns(min(len(chips), 2)) * len(chips), chips):
                column.altair_chart(charts.predicted_outcome(bands, chip), width="stretch")
        learnt = outcome.parameters(proposal.predicted_json)
        if not learnt.empty:
            st.markdown(
                "**Why this experiment** — the parameters it targets, their uncertainty now and "
                "expected after it (relative SE from the posterior)"
            )
            model = units_view.model_of_fit(db, proposal.fit_id)
            st.dataframe(units_view.with_parameter_units(learnt, model), hide_index=True, width="stretch")
        checks = outcome.checks(proposal.predicted_json)
        if not checks.empty:
            failed = checks[~checks["ok"].astype(bool)]
            (st.error if len(failed) else st.success)(
                f"Safety checks against the rig file: {len(checks) - len(failed)} of {len(checks)} pass"
                + (
                    ""
                    if failed.empty
                    else " — "
                    + "; ".join(f"{r.chip}: {r.check} {r.value} (limit {r.limit})" for r in failed.itertuples())
                )
            )
            st.dataframe(checks, hide_index=True, width="stretch")
        with st.expander("Design (as the runner will execute it)"):
            st.json(decisions.pretty_json(proposal.design_json))
        if not who.can_approve:
            continue
        with st.form(f"decide_{proposal.id}", clear_on_submit=True):
            reason = st.text_area("Reason (kept with the decision)", key=f"reason_{proposal.id}")
            signature = st.text_input(
                f"Signature: your password, {who.username}", type="password", key=f"signature_{proposal.id}"
            )
            approve, reject = st.columns(2)
            chosen = None
            if approve.form_submit_button("Approve and sign", type="primary"):
                chosen = "approve"
            if reject.form_submit_button("Reject and sign"):
                chosen = "reject"
        if chosen:
            done = attempt(lambda: decisions.decide(db, who, proposal.id, chosen, reason, signature))
            if done is not None:
                flash(f"Proposal {done.proposal_id} {done.decision}; request {done.request_id} sent to the runner.")
                st.rerun()

# ------------------------------------------------------------------ the record of every decision
st.header("History")
st.caption(
    "Every proposal of every run: its status, who decided it (a person's signed decision or a policy), "
    "why and when (wall-clock UTC), and for an executed proposal what was measured against the prediction."
)
records = history.decision_records(db)
runs_seen = sorted({r.run_id for r in records if r.run_id is not None}, reverse=True)
chosen_run = st.selectbox(
    "Run", ["all runs", *runs_seen], key="history_run", format_func=lambda r: r if r == "all runs" else f"run {r}"
)
shown = [r for r in records if chosen_run == "all runs" or r.run_id == chosen_run]
if not shown:
    st.info("No proposal yet: the closed loop's propose step makes them.")
else:
    outcomes = {r.proposal_id: history.outcome(db, r.proposal_id) for r in shown if r.status == "executed"}
    st.dataframe(history.table(shown, outcomes, history.run_starts(db)), hide_index=True, width="stretch")
    for proposal_id, observed in outcomes.items():
        if not observed:
            continue
        with st.expander(f"Proposal {proposal_id}: outcome vs prediction — {history.outcome_summary(observed)}"):
            st.caption(
                "Each assay of the samples the proposal took, beside the twin's prediction when it was proposed: "
                "the band is the posterior's 90 % band of the mean (assay noise not included)."
            )
            st.dataframe(history.outcome_table(observed), hide_index=True, width="stretch")
