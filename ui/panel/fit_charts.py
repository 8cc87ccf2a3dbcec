"""Observed against predicted for a chip fit (the goodness-of-fit plot nlmixr2 / xpose users look for first).

One chart per observable, since observables may differ in unit: points on the identity line are
observations the fit reproduces; a bend away from it at high or low values is a model misfit.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from ui.unit_text import label


def observed_vs_predicted(data: pd.DataFrame, observable: str, unit: str | None) -> alt.LayerChart:
    """``data``: calibration.uncertainty.review.FitView.data (time_h, observable, value, prediction, weighted_residual)."""
    points = data[data["observable"] == observable]
    values = pd.concat([points["value"], points["prediction"]])
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    identity = pd.DataFrame({"x": [low, high], "y": [low, high]})
    line = alt.Chart(identity).mark_line(color="#888", strokeDash=[4, 3]).encode(x="x:Q", y="y:Q")
    dots = (
        alt.Chart(points)
        .mark_point(filled=True, color="#ff7f0e")
        .encode(
            x=alt.X("prediction:Q", title=label(f"predicted {observable}", unit)),
            y=alt.Y("value:Q", title=label(f"observed {observable}", unit)),
            tooltip=["time_h", "value", "prediction", "weighted_residual"],
        )
    )
    return alt.layer(line, dots).properties(height=220, title=f"{observable}: observed against predicted")
