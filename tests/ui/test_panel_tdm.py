"""The learning patient twin page (AppTest): the forecast band narrows as levels are added."""

from __future__ import annotations

from tests.ui.test_panel_support import (  # noqa: F401 (lab is a fixture)
    app_signed_in,
    chart_frames,
    charts,
    lab,
    on_page,
    texts,
)


def _band_width(app) -> float:
    """The mean width of the forecast's 95 % band in the first chart (concentration over time)."""
    frames = [f for f in chart_frames(charts(app)[0]) if {"low", "high"} <= set(f.columns)]
    return float((frames[0]["high"] - frames[0]["low"]).mean())


def test_the_forecast_band_narrows_as_levels_are_added(lab):
    app = on_page(app_signed_in("sam"), "tdm")
    app.button(key="FormSubmitter:tdm-Learn from the levels").click().run()
    assert not app.error, [e.value for e in app.error]
    table = app.dataframe[0].value
    assert list(table["levels"]) == list(range(9))  # the prior, then eight levels
    widths = (table["trough 95 % high"] - table["trough 95 % low"]).to_list()
    assert widths[-1] < 0.2 * widths[0]
    cl = (table["CL 95 % high"] / table["CL 95 % low"]).to_list()
    assert cl[-1] < cl[0] and table["proposal"].iloc[-1] == "200 mg q12h"
    assert len(charts(app)) == 2
    after_all = _band_width(app)
    app.slider(key="tdm_used").set_value(0).run()
    assert not app.exception
    prior_only = _band_width(app)
    app.slider(key="tdm_used").set_value(2).run()
    after_two = _band_width(app)
    assert after_all < after_two < prior_only
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["CL (L/h)"] == f"{table['CL (L/h)'].iloc[2]:.3g}"  # the metrics follow the slider too
    assert "Therapeutic drug monitoring" in texts(app)


def test_a_bad_levels_table_is_a_message(lab):
    app = on_page(app_signed_in("sam"), "tdm")
    app.text_area(key="tdm_levels").input("ID,TIME\n1,0\n")
    app.button(key="FormSubmitter:tdm-Learn from the levels").click().run()
    assert app.error and not app.exception
    assert "This failed inside ChipTwin" not in app.error[0].value, app.error[0].value
    assert "EVID" in app.error[0].value or "dose" in app.error[0].value, app.error[0].value
