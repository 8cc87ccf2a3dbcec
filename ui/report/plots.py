"""Figures of the report: each chip's fit against its data (prediction, 90 % band), as PNG bytes.

matplotlib's Agg canvas on a Figure object (no pyplot: no global state, safe in the panel's threads).
The data are the run's lab dataset as the calibrate step saw it, the same as the panel's review.
"""

from __future__ import annotations

import io

from sqlalchemy import Engine

from calibration.errors import CalibrationError
from calibration.io.record import FitRecord
from calibration.uncertainty.review import review_chip_fit
from protocols.loop.lab_data import run_dataset
from twin.catalogue import get_model
from twin.errors import TwinError
from ui.report.gather import ChipFit
from ui.unit_text import label


def fit_figure(engine: Engine, run_id: int, fit: ChipFit) -> bytes | None:
    """PNG of data and prediction per observable; None when the store holds no data to draw it against."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not fit.chip:
        return None
    try:
        data = run_dataset(engine, run_id, fit.created_utc_s, [fit.chip])[0].get(fit.chip)
        if data is None:
            return None
        view = review_chip_fit(data, FitRecord.from_dict(fit.record), points=120)
    except (CalibrationError, TwinError):
        return None
    units = _observable_units(fit.model)
    observables = sorted(view.data["observable"].unique())
    figure = Figure(figsize=(3.2 * max(len(observables), 1), 2.6), layout="constrained")
    for k, observable in enumerate(observables):
        ax = figure.add_subplot(1, len(observables), k + 1)
        curve = view.curves[view.curves["observable"] == observable]
        points = view.data[view.data["observable"] == observable]
        if view.has_band:
            ax.fill_between(curve["time_h"], curve["low"], curve["high"], color="C0", alpha=0.2, label="90 % band")
        ax.plot(curve["time_h"], curve["prediction"], color="C0", lw=1.2, label="prediction")
        ax.plot(points["time_h"], points["value"], "o", color="C3", ms=3.5, label="observed")
        ax.set_xlabel(label("time since start", "h"))
        ax.set_ylabel(label(observable, units.get(observable)))
        ax.legend(fontsize=6)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _observable_units(model: str) -> dict[str, str]:
    try:
        return {o.name: o.unit for o in get_model(model).observables}
    except TwinError:
        return {}
