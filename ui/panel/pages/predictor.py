"""Drug response predictor: one virtual patient's exposure and the dose that centres a target window."""

import streamlit as st

from ui.panel import twin_tools, units_view
from ui.panel.page import attempt, signed_in

signed_in()
st.title("Drug response predictor")

with st.form("predict"):
    a, b, c, d = st.columns(4)
    age = a.number_input("age (years)", 18.0, 120.0, 54.0, key="p_age")
    sex = b.selectbox("sex", ["female", "male"], key="p_sex")
    weight = c.number_input("weight (kg)", 20.0, 400.0, 72.0, key="p_weight")
    scr = d.number_input("serum creatinine (mg/dL)", 0.1, 20.0, 0.9, key="p_scr")
    e, f, g, h = st.columns(4)
    cyp2d6 = e.text_input("CYP2D6 diplotype", "*1/*1", key="p_2d6")
    cyp2c19 = f.text_input("CYP2C19 diplotype", "*1/*1", key="p_2c19")
    comed = g.selectbox("co-medication", ["(none)", *twin_tools.inhibitors()], key="p_comed")
    unbound = h.number_input("its unbound conc. (µM)", 0.0, 100.0, 0.02, format="%.4f", key="p_unbound")
    i, j, k, m = st.columns(4)
    drug = i.selectbox(
        "drug", twin_tools.patient_drugs(), index=twin_tools.patient_drugs().index("metoprolol"), key="p_drug"
    )
    regimen = j.text_input("regimen", "100 mg q12h x14 oral", key="p_regimen")
    metric = k.selectbox("target metric", ["auc_tau_ss", "ctrough_ss"], key="p_metric")
    target = m.text_input(
        "target window (LOW:HIGH in mg·h/L for an AUC, mg/L for a concentration; or X for 80–125 % of X)",
        "",
        key="p_target",
    )
    strengths = st.text_input("available strengths (mg, comma-separated; blank: any dose)", "", key="p_strengths")
    go = st.form_submit_button("Predict", type="primary")

if go:
    inputs = twin_tools.PatientInputs(
        age, sex, weight, scr, {"CYP2D6": cyp2d6, "CYP2C19": cyp2c19}, "" if comed == "(none)" else comed, unbound
    )
    prediction = attempt(lambda: twin_tools.predict_patient(drug, inputs, regimen, metric, target, strengths))
    if prediction is not None:
        st.subheader(f"{prediction.drug} — {prediction.regimen}")
        st.dataframe(units_view.prediction_with_units(twin_tools.prediction_table(prediction)), hide_index=True)
        if prediction.target is not None:
            st.caption(units_view.target_text(prediction.target.metric, prediction.target.low, prediction.target.high))
        rec = prediction.recommendation
        if rec is not None and prediction.target is not None:
            where = "inside" if rec.in_window else "OUTSIDE"
            st.metric(
                "recommended dose",
                f"{rec.dose_mg:.4g} mg",
                help=f"predicted {prediction.target.metric} {rec.predicted:.4g} "
                f"{units_view.exposure_unit(prediction.target.metric)}, {where} the window",
            )
        for assumption in prediction.assumptions:
            st.caption(f"assumption: {assumption}")
