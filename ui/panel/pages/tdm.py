"""Learning patient twin: each drug level updates the patient's estimate; the forecast band narrows."""

import streamlit as st

from ui.panel import tdm_view, twin_tools
from ui.panel.page import attempt, signed_in

signed_in()
st.title("Learning patient twin")
st.caption(
    "Therapeutic drug monitoring: the patient's levels, taken one at a time, update the twin's estimate of "
    "their clearance (MAP with its 95 % interval) and its forecast; with a target, the next dose is proposed."
)

with st.form("tdm"):
    a, b, c, d, e = st.columns(5)
    age = a.number_input("age (years)", 18.0, 120.0, 54.0, key="tdm_age")
    sex = b.selectbox("sex", ["female", "male"], key="tdm_sex")
    weight = c.number_input("weight (kg)", 20.0, 400.0, 72.0, key="tdm_weight")
    scr = d.number_input("serum creatinine (mg/dL)", 0.1, 20.0, 0.9, key="tdm_scr")
    cyp2d6 = e.text_input("CYP2D6 diplotype", "*1/*4", key="tdm_2d6")
    f, g, h = st.columns(3)
    drugs = twin_tools.patient_drugs()
    drug = f.selectbox("drug", drugs, index=drugs.index("metoprolol"), key="tdm_drug")
    target = g.text_input(
        "target (auc, ctrough or cmax at steady state: METRIC=LOW:HIGH)", "auc=0.8:1.2", key="tdm_target"
    )
    strengths = h.text_input("strengths (mg, comma-separated)", "50,100,150,200,300", key="tdm_strengths")
    levels = st.text_area(
        "doses and levels (CSV: ID, TIME h, AMT mg, EVID, CMT, DV mg/L, MDV)",
        tdm_view.EXAMPLE_LEVELS,
        height=200,
        key="tdm_levels",
    )
    go = st.form_submit_button("Learn from the levels", type="primary")

if go:
    inputs = twin_tools.PatientInputs(age, sex, weight, scr, {"CYP2D6": cyp2d6})
    found = attempt(lambda: tdm_view.learn_levels(drug, inputs, levels, target, strengths))
    if found is not None:
        st.session_state["tdm_result"] = found
result = st.session_state.get("tdm_result")
if result is not None:
    learning, data = result
    table = tdm_view.steps_table(learning)
    last = len(learning.steps) - 1
    used = st.slider("levels used", 0, last, last, key="tdm_used")
    step = learning.steps[used]
    cols = st.columns(3)
    cols[0].metric("CL (L/h)", f"{step.cl_l_per_h:.3g}", help=f"95 % {step.cl_ci95[0]:.3g}–{step.cl_ci95[1]:.3g}")
    trough = step.next_trough_mg_per_l
    cols[1].metric(
        f"next trough at {learning.regimen.next_dose_h:g} h (mg/L)",
        f"{trough.median:.3g}",
        help=f"95 % {trough.low:.3g}–{trough.high:.3g}",
    )
    cols[2].metric("proposed next regimen", step.proposal or "—", help=step.refusal)
    band = attempt(lambda: tdm_view.band_over_time(learning, data, used))
    if band is not None:
        title = "prior only" if used == 0 else f"after {used} level{'s' if used > 1 else ''}"
        st.altair_chart(
            tdm_view.band_chart(band, tdm_view.level_points(learning, used), f"Forecast, {title}"), width="stretch"
        )
    st.altair_chart(tdm_view.narrowing_chart(table), width="stretch")
    st.dataframe(table, hide_index=True, width="stretch")
    for note in learning.notes:
        st.caption(f"note: {note}")
