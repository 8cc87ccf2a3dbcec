"""Units on every number a person reads in the panel, pretty (Ω·cm², µM), through one helper; the model
review warns of estimates correlated at |r| ≥ 0.95 and plots observed against predicted.

AppTest (streamlit.testing) against the panel tests' real SQLite lab store.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from store import make_engine
from store.schema import Fit
from tests.ui.test_panel_support import (  # noqa: F401 (lab, calibrated_lab are fixtures)
    app_signed_in,
    calibrated_lab,
    charts,
    lab,
    on_page,
    texts,
)
from ui.unit_text import label, pretty_unit


@pytest.mark.parametrize(
    "stored, shown",
    [
        ("ohm * cm ** 2", "Ω·cm²"),
        ("ohm*cm^2", "Ω·cm²"),
        ("uM", "µM"),
        ("mL/h", "mL/h"),
        ("percent/h", "%/h"),
        ("1/h", "1/h"),
        ("nmol/h", "nmol/h"),
        ("umol/L/h", "µmol/(L·h)"),
        ("dimensionless", "1"),
        ("", "1"),
        ("cells", "cells"),  # pint cannot read it: shown as written, never an error
    ],
)
def test_pretty_unit(stored, shown):
    assert pretty_unit(stored) == shown


def _axis_titles(chart) -> list[str]:
    """Every axis title of a Vega-Lite chart (layers included)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("x", "y") and isinstance(value, dict) and isinstance(value.get("title"), str):
                    found.append(value["title"])
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(chart.proto.spec))
    return found


def _set_correlation(url: str, fit_id: int, r: float) -> None:
    engine = make_engine(url)
    with engine.begin() as c:
        record = json.loads(c.execute(select(Fit.record_json).where(Fit.id == fit_id)).scalar())
        record["correlation"]["matrix"][0][1] = record["correlation"]["matrix"][1][0] = r
        c.execute(update(Fit).where(Fit.id == fit_id).values(record_json=json.dumps(record)))
    engine.dispose()


def test_review_warns_of_a_high_correlation_and_states_units(lab):
    _set_correlation(lab.url, lab.fit_ids[-1], 0.98)  # the newest fit is the one shown first
    app = on_page(app_signed_in("sam"), "review")
    warnings = [w.value for w in app.warning]
    assert any("vmax and km are correlated at r = +0.98" in w for w in warnings), warnings
    table = app.dataframe[0].value
    units = dict(zip(table["parameter"], table["unit"]))
    assert units["vmax"] == "nmol/h" and units["km"] == "µM" and units["prop"] == "1"
    learning = [c for c in charts(app) if "facet" in json.loads(c.proto.spec)]
    assert learning and {"vmax (nmol/h)", "km (µM)"} <= set(_facet_values(learning[0]))


def _facet_values(chart) -> list[str]:
    from tests.ui.test_panel_support import chart_frames

    return [v for frame in chart_frames(chart) if "parameter" in frame for v in frame["parameter"]]


def test_review_without_a_high_correlation_warns_of_none(lab):
    _set_correlation(lab.url, lab.fit_ids[-1], 0.94)
    app = on_page(app_signed_in("sam"), "review")
    assert not any("correlated at" in w.value for w in app.warning)


def test_review_plots_observed_against_predicted_with_units(calibrated_lab):
    app = on_page(app_signed_in("sam"), "review")
    assert not app.error, [e.value for e in app.error]
    titles = [t for chart in charts(app) for t in _axis_titles(chart)]
    for observable in ("drug_medium", "metabolite_medium"):
        assert label(observable, "uM") in titles  # the fit band's y axis
        assert f"predicted {observable} (µM)" in titles and f"observed {observable} (µM)" in titles
    assert "Observed against predicted" in texts(app)


def test_overview_and_live_pages_show_pretty_channel_units(lab):
    app = app_signed_in("tina")
    latest = app.dataframe[2].value
    assert "Ω·cm²" in set(latest["unit"]) and "ohm*cm^2" not in set(latest["unit"])
    app = on_page(app, "live")
    titles = [json.loads(c.proto.spec).get("title", "") for c in charts(app)]
    assert "liver-1/teer (Ω·cm²)" in titles and "liver-1/oxygen (%)" in titles


def test_population_table_and_target_window_carry_units(lab):
    app = on_page(app_signed_in("sam"), "population")
    app.number_input(key="pop_n").set_value(200)
    app.button(key="FormSubmitter:population-Simulate population").click().run()
    assert not app.error, [e.value for e in app.error]
    table = app.dataframe[0].value
    units = dict(zip(table["metric"], table["unit"]))
    assert units["auc_tau_ss"] == "mg·h/L" and units["ctrough_ss"] == "mg/L" and units["cl_l_per_h"] == "L/h"
    assert "target window of auc_tau_ss: 2–4 mg·h/L" in texts(app)
    assert "auc_tau_ss (mg·h/L)" in _axis_titles(charts(app)[0])


def test_predictor_states_the_target_window_and_every_unit(lab):
    app = on_page(app_signed_in("sam"), "predictor")
    app.text_input(key="p_target").input("1.5:3")
    app.button(key="FormSubmitter:predict-Predict").click().run()
    assert not app.error, [e.value for e in app.error]
    table = app.dataframe[0].value
    units = dict(zip(table["quantity"], table["unit"]))
    assert units["auc_tau_ss"] == "mg·h/L" and units["F"] == "1" and units["CL"] == "L/h"
    assert "target window of auc_tau_ss: 1.5–3 mg·h/L" in texts(app)
    assert "mg·h/L" in app.metric[0].help


def test_a_proposals_parameters_carry_the_units_of_its_fits_model(lab):
    from store.schema import Proposal
    from tests.ui.test_panel_pages import OUTCOME

    engine = make_engine(lab.url)
    with engine.begin() as c:
        c.execute(update(Proposal).where(Proposal.id == lab.proposal_id).values(predicted_json=json.dumps(OUTCOME)))
    engine.dispose()
    app = on_page(app_signed_in("sam"), "proposals")
    taught = app.dataframe[0].value
    assert dict(zip(taught["parameter"], taught["unit"])) == {"vmax": "nmol/h", "km": "µM"}


def test_the_live_forecast_axes_carry_units(calibrated_lab):
    app = on_page(app_signed_in("tina"), "live")
    assert not app.error, [e.value for e in app.error]
    forecasts = [c for c in charts(app) if "twin forecast" in json.dumps(json.loads(c.proto.spec).get("title", ""))]
    assert forecasts, "no forecast drawn"
    titles = {t for chart in forecasts for t in _axis_titles(chart)}
    assert "drug_medium (µM)" in titles and "time since the run started (h)" in titles


def test_the_simulators_end_values_carry_units(lab):
    app = on_page(app_signed_in("sam"), "simulator")
    app.multiselect(key="sim_modules").set_value(["liver"]).run()
    app.button(key="FormSubmitter:simulate-Simulate").click().run()
    assert not app.error, [e.value for e in app.error]
    final = app.dataframe[-1].value
    units = dict(zip(final["at the end"], final["unit"]))
    assert units["reservoir"] == "µM" and units["liver viability (%)"] == "%"
