"""Figures: live readings with min–max bands and event marks (plain Vega-Lite, the hot path);
correlation heatmaps, learning curves, simulations and population histograms (Altair, which
ships with Streamlit — plotly is not installed)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from ui.panel.live import ChannelWindow
from ui.run_clock import RunClock
from ui.unit_text import label, pretty_unit


def _run_hours(clock: RunClock, seconds: pd.Series) -> pd.Series:
    return seconds.astype(float).map(clock.hours)


def channel_spec(channel: ChannelWindow, marks: pd.DataFrame, height: int = 180, clock: RunClock | None = None) -> dict:
    """Vega-Lite for one channel: mean line over the bucket's min–max band; doses and samples as rules.

    Written as a plain spec (for ``st.vega_lite_chart(channel.frame, spec)``) rather than through
    Altair: this is the live page's hot path, and Altair's schema validation costs more than the
    database query. The readings travel as the chart's Arrow data; the few marks inline. A
    simulated run's axis is run time (its clock's dates lie in the future), a real run's dates.
    """
    run_time = clock is not None and clock.simulated
    field = "run_h" if run_time else "time"
    x = (
        {"field": "run_h", "type": "quantitative", "title": "run time (h since start)"}
        if run_time
        else {"field": "time", "type": "temporal", "title": None}
    )
    layers: list[dict] = [
        {
            "mark": {"type": "area", "opacity": 0.25},
            "encoding": {
                "x": x,
                "y": {
                    "field": "min",
                    "type": "quantitative",
                    "title": pretty_unit(channel.unit),
                    "scale": {"zero": False},
                },
                "y2": {"field": "max"},
            },
        },
        {
            "mark": {"type": "line"},
            "encoding": {
                "x": x,
                "y": {"field": "value", "type": "quantitative"},
                "tooltip": [
                    {"field": f, "type": "temporal" if f == "time" else "quantitative"}
                    for f in (field, "value", "min", "max", "n")
                ],
            },
        },
    ]
    if not marks.empty:
        at = (
            list(_run_hours(clock, marks["t_utc_s"]))
            if clock is not None and run_time
            else [t.isoformat() for t in marks["time"]]
        )
        values = [{field: t, "kind": k, "label": label} for t, k, label in zip(at, marks["kind"], marks["label"])]
        layers.append(
            {
                "data": {"values": values},
                "mark": {"type": "rule", "strokeDash": [4, 3]},
                "encoding": {
                    "x": x,
                    "color": {
                        "field": "kind",
                        "type": "nominal",
                        "title": None,
                        "scale": {"domain": ["dose", "sample"], "range": ["#d62728", "#1f77b4"]},
                    },
                    "tooltip": [{"field": "kind"}, {"field": "label"}],
                },
            }
        )
    return {"title": label(channel.name, channel.unit), "height": height, "layer": layers}


def channel_data(channel: ChannelWindow, clock: RunClock | None = None) -> pd.DataFrame:
    """The columns the channel spec plots (what is sent to the browser)."""
    if clock is not None and clock.simulated:
        frame = channel.frame[["value", "min", "max", "n"]].copy()
        frame.insert(0, "run_h", _run_hours(clock, channel.frame["t_utc_s"]))
        return frame
    return channel.frame[["time", "value", "min", "max", "n"]]


def correlation_heatmap(names: list[str], matrix: list[list[float]]) -> alt.LayerChart:
    rows = [{"row": a, "column": b, "r": matrix[i][j]} for i, a in enumerate(names) for j, b in enumerate(names)]
    frame = pd.DataFrame(rows)
    base = alt.Chart(frame).encode(
        x=alt.X("column:N", sort=names, title=None), y=alt.Y("row:N", sort=names, title=None)
    )
    cells = base.mark_rect().encode(
        color=alt.Color("r:Q", scale=alt.Scale(domain=[-1, 1], scheme="redblue", reverse=True)),
        tooltip=["row", "column", "r"],
    )
    text = base.mark_text(fontSize=11).encode(text=alt.Text("r:Q", format=".2f"))
    return (cells + text).properties(width=alt.Step(48), height=alt.Step(32))


def learning_curve(frame: pd.DataFrame) -> alt.FacetChart:
    """Estimates with 95 % intervals, fit after fit, one panel per parameter (log scale)."""
    base = alt.Chart(frame).encode(x=alt.X("fit:O", title="fit (oldest → newest)"))
    points = base.mark_point(filled=True).encode(
        y=alt.Y("estimate:Q", scale=alt.Scale(type="log"), title=None),
        tooltip=["parameter", "fit", "estimate", "low", "high"],
    )
    bars = base.mark_errorbar().encode(y="low:Q", y2="high:Q")
    return (
        alt.layer(bars, points, data=frame)
        .properties(height=120, width=260)
        .facet(facet="parameter:N", columns=3)
        .resolve_scale(y="independent")
    )


def time_courses(frame: pd.DataFrame, unit: str, title: str, log: bool = False) -> alt.Chart:
    """Long-form (time_h, series, value) lines, one colour per series."""
    scale = alt.Scale(type="symlog") if log else alt.Scale()
    return (
        alt.Chart(frame, title=title)
        .mark_line()
        .encode(
            x=alt.X("time_h:Q", title="time (h)"),
            y=alt.Y("value:Q", title=pretty_unit(unit), scale=scale),
            color=alt.Color("series:N", title=None),
            tooltip=["series", "time_h", "value"],
        )
        .properties(height=260)
    )


def histogram(frame: pd.DataFrame, metric: str, unit: str, target: tuple[float, float] | None) -> alt.LayerChart:
    """A distribution from (low, high, fraction) bins on a log axis; the target window shaded."""
    bars = (
        alt.Chart(frame)
        .mark_rect(opacity=0.8)
        .encode(
            x=alt.X("low:Q", scale=alt.Scale(type="log"), title=label(metric, unit)),
            x2="high:Q",
            y=alt.Y("fraction:Q", title="fraction of patients"),
            tooltip=["low", "high", "fraction"],
        )
    )
    layers = [bars]
    if target is not None:
        shade = pd.DataFrame({"low": [target[0]], "high": [target[1]]})
        layers.insert(0, alt.Chart(shade).mark_rect(color="#2ca02c", opacity=0.15).encode(x="low:Q", x2="high:Q"))
    return alt.layer(*layers).properties(height=240)


def fit_band(
    curves: pd.DataFrame,
    data: pd.DataFrame,
    observable: str,
    has_band: bool,
    title: str | None = None,
    unit: str | None = None,
) -> alt.LayerChart:
    """One observable: the data, the fit's prediction and its 90 % band (parameter uncertainty)."""
    curve = curves[curves["observable"] == observable]
    points = data[data["observable"] == observable]
    x = alt.X("time_h:Q", title="time since the run started (h)")
    y_title = observable if unit is None else label(observable, unit)
    layers = []
    if has_band:
        layers.append(
            alt.Chart(curve).mark_area(opacity=0.25).encode(x=x, y=alt.Y("low:Q", title=y_title), y2="high:Q")
        )
    layers.append(alt.Chart(curve).mark_line().encode(x=x, y=alt.Y("prediction:Q", title=y_title)))
    layers.append(
        alt.Chart(points)
        .mark_point(filled=True, color="#ff7f0e")
        .encode(x=x, y="value:Q", tooltip=["time_h", "value", "prediction", "weighted_residual"])
    )
    title = title or f"{observable}: data, prediction" + (" and 90 % band" if has_band else "")
    return alt.layer(*layers).properties(height=220, title=title)


def residuals(data: pd.DataFrame) -> alt.LayerChart:
    """Weighted residuals (y − f)/SD against time, one colour per observable; ±2 guides."""
    guides = pd.DataFrame({"y": [-2.0, 0.0, 2.0]})
    rules = alt.Chart(guides).mark_rule(strokeDash=[4, 3], color="#888").encode(y="y:Q")
    points = (
        alt.Chart(data)
        .mark_point(filled=True)
        .encode(
            x=alt.X("time_h:Q", title="time (h)"),
            y=alt.Y("weighted_residual:Q", title="weighted residual (SDs)"),
            color=alt.Color("observable:N", title=None),
            tooltip=["observable", "time_h", "value", "prediction"],
        )
    )
    return alt.layer(rules, points).properties(height=200)


def profile(
    values: list[float], delta: list[float], name: str, threshold: float, unit: str | None = None
) -> alt.LayerChart:
    """Δ(−2LL) against the parameter (log axis) with the 95 % threshold."""
    frame = pd.DataFrame({name: values, "delta": delta})
    curve = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X(f"{name}:Q", scale=alt.Scale(type="log"), title=name if unit is None else label(name, unit)),
            y=alt.Y("delta:Q", title="Δ(−2 log L)"),
        )
    )
    line = alt.Chart(pd.DataFrame({"y": [threshold]})).mark_rule(color="#d62728", strokeDash=[4, 3]).encode(y="y:Q")
    return alt.layer(curve, line).properties(height=220, title=f"profile likelihood of {name}")


def predicted_outcome(frame: pd.DataFrame, chip: str) -> alt.LayerChart:
    """One chip's predicted observables at the proposed sample times: mean and 90 % band (posterior)."""
    data = frame[frame["chip"] == chip]
    x = alt.X("time_h:Q", title="time after the dose (h)")
    color = alt.Color("observable:N", title=None)
    band = alt.Chart(data).mark_area(opacity=0.2).encode(x=x, y=alt.Y("p05:Q", title="µM"), y2="p95:Q", color=color)
    line = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(x=x, y="mean:Q", color=color, tooltip=["observable", "time_h", "mean", "p05", "p95"])
    )
    return alt.layer(band, line).properties(height=200, title=f"{chip}: predicted outcome (mean, 90 % band)")
