"""Virtual population: N patients → exposure distribution, probability of target attainment, toxicity margin."""

import streamlit as st

from ui.panel import charts, twin_tools, units_view
from ui.panel.page import attempt, signed_in

signed_in()
st.title("Virtual population")

with st.form("population"):
    a, b, c, d = st.columns(4)
    drugs = twin_tools.patient_drugs()
    drug = a.selectbox("drug", drugs, index=drugs.index("metoprolol"), key="pop_drug")
    regimen = b.text_input("regimen", "100 mg q12h x14 oral", key="pop_regimen")
    n = c.number_input("patients", 100, 1_000_000, 5000, step=1000, key="pop_n")
    seed = d.number_input("seed", 0, 2**31 - 1, 0, key="pop_seed")
    e, f = st.columns(2)
    metric = e.selectbox("target metric", ["auc_tau_ss", "ctrough_ss"], key="pop_metric")
    target = f.text_input(
        "target window (LOW:HIGH in mg·h/L for an AUC, mg/L for a concentration; or X for 80–125 % of X)",
        "2:4",
        key="pop_target",
    )
    go = st.form_submit_button("Simulate population", type="primary")

if go:
    bar = st.progress(0.0, text="simulating patients")
    summary = attempt(
        lambda: twin_tools.simulate_population(
            drug, regimen, int(n), int(seed), metric, target, progress=lambda done, total: bar.progress(done / total)
        )
    )
    bar.empty()
    if summary is not None:
        st.session_state["population_result"] = (summary, metric)
found = st.session_state.get("population_result")
if found is not None:
    summary, metric = found
    cols = st.columns(3)
    cols[0].metric("patients", f"{summary.n:,}")
    cols[1].metric("probability of target attainment", "—" if summary.pta is None else f"{summary.pta:.1%}")
    below = summary.to_dict().get("fraction_toxicity_margin_below_1")
    cols[2].metric("toxicity margin < 1", "— (no chip EC50)" if below is None else f"{below:.2%}")
    window = None if summary.target is None else (summary.target.low, summary.target.high)
    unit = units_view.exposure_unit(metric)
    if window is not None:
        st.caption(units_view.target_text(metric, *window))
    st.altair_chart(charts.histogram(twin_tools.distribution(summary, metric), metric, unit, window), width="stretch")
    st.dataframe(
        units_view.population_with_units(twin_tools.population_table(summary)), hide_index=True, width="stretch"
    )
