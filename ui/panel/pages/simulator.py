"""Body-on-chip simulator: choose organ modules, flows and volumes, a dose; every compartment and readout."""

import streamlit as st

from twin.chip.multi_organ import ALL_MODULES
from ui.panel import charts, twin_tools, units_view
from ui.panel.page import attempt, signed_in

signed_in()
st.title("Body-on-chip simulator")
st.caption("The twin's multi_organ model: organ modules around a mixing reservoir (Maass 2017 scales by default).")

modules = st.multiselect("Organ modules", ALL_MODULES, default=list(ALL_MODULES), key="sim_modules")
with st.form("simulate"):
    settings = {}
    columns = st.columns(max(len(modules), 1))
    for column, module in zip(columns, modules):
        default = twin_tools.default_module(module)
        column.markdown(f"**{module}**")
        settings[module] = twin_tools.ModuleSetting(
            column.number_input(
                "flow (mL/h)", 0.0, 100.0, round(default.flow_ml_h, 4), format="%.4f", key=f"q_{module}"
            ),
            column.number_input("channel (mL)", 0.001, 10.0, default.channel_ml, format="%.3f", key=f"v_{module}"),
            column.number_input("cells (mL)", 0.0001, 1.0, default.cell_ml, format="%.4f", key=f"c_{module}"),
        )
    a, b, c, d = st.columns(4)
    reservoir = a.number_input("reservoir (mL)", 0.01, 50.0, 0.4, key="sim_reservoir")
    dose = b.number_input("dose at t = 0 (nmol)", 0.0, 1e6, 10.0, key="sim_dose")
    into = c.selectbox(
        "dosed into",
        ["reservoir", "apical"],
        key="sim_into",
        help="apical: the gut's lumen (oral); needs the gut module",
    )
    hours = d.number_input("duration (h)", 1.0, 720.0, 48.0, key="sim_hours")
    run = st.form_submit_button("Simulate", type="primary", disabled=not modules)

if run and modules:
    result = attempt(lambda: twin_tools.simulate_body_on_chip(tuple(modules), settings, reservoir, dose, into, hours))
    if result is not None:
        st.session_state["sim_result"] = result
result = st.session_state.get("sim_result")
if result is not None:
    st.altair_chart(
        charts.time_courses(result.concentrations, "µM", "Drug concentration in every compartment"), width="stretch"
    )
    st.altair_chart(charts.time_courses(result.readouts, "%", "PD readouts: viability and oxygen"), width="stretch")
    if not result.teer.empty:
        st.altair_chart(charts.time_courses(result.teer, "Ω·cm²", "Gut barrier (TEER)"), width="stretch")
    st.dataframe(units_view.final_values(result.final), hide_index=True)
