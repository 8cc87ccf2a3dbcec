"""Each pending proposal: its design, predicted outcome and information gain; approve or reject with a signature."""

import streamlit as st

from ui.panel import decisions, lab
from ui.panel.page import attempt, engine, flash, show_flash, signed_in

who = signed_in()
db = engine()
st.title("Proposals")
show_flash()
if not who.can_approve:
    st.info(f"Your role ({who.role}) may look at proposals but not approve or reject them.")

pending = lab.pending_proposals(db)
if pending.empty:
    st.success("No proposal waits for a decision.")
for proposal in pending.itertuples():
    gain = proposal.expected_information_gain
    with st.container(border=True):
        st.subheader(f"Proposal {proposal.id}")
        st.caption(f"run {proposal.run_id} · fit {proposal.fit_id} · created {proposal.created:%Y-%m-%d %H:%M:%S} UTC · "
                   f"expected information gain {'—' if gain is None else f'{gain:.3g}'}")
        design, predicted = st.columns(2)
        design.markdown("**Design**")
        design.json(decisions.pretty_json(proposal.design_json))
        predicted.markdown("**Predicted outcome**")
        predicted.json(decisions.pretty_json(proposal.predicted_json), expanded=False)
        if not who.can_approve:
            continue
        with st.form(f"decide_{proposal.id}", clear_on_submit=True):
            reason = st.text_area("Reason (kept with the decision)", key=f"reason_{proposal.id}")
            signature = st.text_input(f"Signature: your password, {who.username}", type="password",
                                      key=f"signature_{proposal.id}")
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
