"""The learning patient twin, for the panel: levels typed as CSV → what the twin learns level by level.

Pure functions from plain inputs to results and frames (calibration/dosing/tdm.py does the work);
the page (pages/tdm.py) only lays out widgets.
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from calibration.dosing.optimise import PATIENT_METRICS, library_prior, parse_window
from calibration.dosing.tdm import PatientLearning, forecast_band, learn
from twin.dataset import prepare_dataset, read_csv_text
from twin.drugs import load_drug
from twin.errors import DatasetError
from twin.patients import patient_from_dict
from ui.panel import validators
from ui.panel.twin_tools import PatientInputs, patient_document

# 100 mg metoprolol q12h; a peak and a trough measured on each of four days (mg/L)
EXAMPLE_LEVELS = """ID,TIME,AMT,EVID,CMT,DV,MDV
1,0,100,1,1,.,1
1,2,0,0,2,0.0937,0
1,11.5,0,0,2,0.00677,0
1,12,100,1,1,.,1
1,24,100,1,1,.,1
1,26,0,0,2,0.0966,0
1,35.5,0,0,2,0.00561,0
1,36,100,1,1,.,1
1,48,100,1,1,.,1
1,60,100,1,1,.,1
1,62,0,0,2,0.102,0
1,71.5,0,0,2,0.00668,0
1,72,100,1,1,.,1
1,83.5,0,0,2,0.00605,0
1,84,100,1,1,.,1
1,95.5,0,0,2,0.00677,0
"""


def levels_of(text: str) -> pd.DataFrame:
    """CSV text (NONMEM-style: ID, TIME h, AMT mg, EVID, CMT, DV mg/L) → a prepared dataset."""
    text = validators.required_text("levels", text, EXAMPLE_LEVELS.splitlines()[0])
    raw = read_csv_text(text, Path("levels"), DatasetError)
    raw.index = pd.RangeIndex(2, len(raw) + 2, name="line")
    return prepare_dataset(raw)


def learn_levels(
    drug: str, inputs: PatientInputs, levels_text: str, target: str = "", strengths_mg: str = ""
) -> tuple[PatientLearning, pd.DataFrame]:
    """The twin after each level, and the dataset it learned from."""
    the_drug = load_drug(drug)
    prior, pk = library_prior(the_drug, patient_from_dict(patient_document(inputs), "patient"))
    levels = levels_of(levels_text)
    window = parse_window(target, {k: v[1] for k, v in PATIENT_METRICS.items()}) if target.strip() else None
    strengths = validators.strengths_mg(strengths_mg) or [25, 50, 100, 150, 200, 300]
    learning = learn(
        levels,
        prior,
        pk,
        drug=drug,
        target=window,
        strengths_mg=strengths,
        ec50_mg_per_l=the_drug.ec50_mg_per_l,
        n_samples=500,
    )
    return learning, levels


def steps_table(learning: PatientLearning) -> pd.DataFrame:
    rows = []
    for s in learning.steps:
        trough = s.next_trough_mg_per_l
        rows.append(
            {
                "levels": s.n_levels,
                "at (h)": s.level_time_h,
                "level (mg/L)": s.level_mg_per_l,
                "CL (L/h)": s.cl_l_per_h,
                "CL 95 % low": s.cl_ci95[0],
                "CL 95 % high": s.cl_ci95[1],
                "next trough (mg/L)": trough.median,
                "trough 95 % low": trough.low,
                "trough 95 % high": trough.high,
                "proposal": s.proposal or ("" if s.refusal is None else "none"),
            }
        )
    return pd.DataFrame(rows)


def band_over_time(learning: PatientLearning, levels: pd.DataFrame, n_levels: int) -> pd.DataFrame:
    """The concentration-time forecast (median, 95 % band) after ``n_levels`` levels, up to the next dose."""
    end = learning.regimen.next_dose_h
    times = np.unique(np.concatenate([np.linspace(0.0, end, 193)[:-1], [end - 1e-9]]))
    return forecast_band(
        levels, learning.posteriors[n_levels], times.tolist(), route=learning.route, fixed=learning.fixed
    )


def level_points(learning: PatientLearning, n_levels: int) -> pd.DataFrame:
    steps = learning.steps[1:]
    return pd.DataFrame(
        {
            "time_h": [s.level_time_h for s in steps],
            "level": [s.level_mg_per_l for s in steps],
            "used": ["used" if s.n_levels <= n_levels else "not yet" for s in steps],
        }
    )


def band_chart(band: pd.DataFrame, points: pd.DataFrame, title: str) -> alt.LayerChart:
    x = alt.X("time_h:Q", title="time since the first dose (h)")
    y_title = "plasma concentration (mg/L)"
    y = alt.Y("median:Q", title=y_title)
    return alt.layer(
        alt.Chart(band).mark_area(opacity=0.25).encode(x=x, y=alt.Y("low:Q", title=y_title), y2="high:Q"),
        alt.Chart(band).mark_line().encode(x=x, y=y),
        alt.Chart(points)
        .mark_point(filled=True, size=60)
        .encode(
            x=x,
            y="level:Q",
            color=alt.Color("used:N", scale=alt.Scale(domain=["used", "not yet"], range=["#ff7f0e", "#bbbbbb"])),
        ),
    ).properties(height=260, title=title)


def narrowing_chart(table: pd.DataFrame) -> alt.LayerChart:
    x = alt.X("levels:O", title="levels measured")
    y_title = "predicted next trough (mg/L)"
    y = alt.Y("next trough (mg/L):Q", title=y_title)
    return alt.layer(
        alt.Chart(table).mark_rule().encode(x=x, y=alt.Y("trough 95 % low:Q", title=y_title), y2="trough 95 % high:Q"),
        alt.Chart(table).mark_point(filled=True).encode(x=x, y=y),
    ).properties(height=220, title="The next trough's 95 % band as levels arrive")
