"""Fixtures for the panel tests: a real lab store (SQLite in tmp_path) filled like a running lab.

Imported by the other test_panel* modules (no tests of its own). The store holds a rig with
two instruments, two chips of three channels each, two hours of readings per channel through
``ingest_readings``, a running protocol run with a dose and a sample, two fits of that run,
a pending proposal, an open alarm, and three users (scientist, technician, admin).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from calibration.io.record import Estimate, FitRecord
from store import make_engine
from store.audit import seal_row
from store.audit_anchor import KEY_FILE_ENV
from store.engine import session
from store.ingest import ReadingIn, ingest_readings
from store.migrate import upgrade
from store.repositories import fits as fit_records
from store.repositories.fits import NewFit
from store.schema import Alarm, Channel, Chip, DoseEvent, Fit, Instrument, Proposal, ProtocolRun, Rig, Sample
from ui.panel.auth import add_user
from ui.panel.context import dispose_engines

APP = Path(__file__).resolve().parents[2] / "ui" / "panel" / "app.py"
T0 = 1.8e9
PASSWORDS = {"sam": "scientist-pw-1", "tina": "technician-pw-1", "ada": "admin-pw-123"}
ROLES = {"sam": "scientist", "tina": "technician", "ada": "admin"}


@dataclass
class Lab:
    url: str
    rig_id: int
    run_id: int
    chip_ids: list[int]
    channel_ids: list[int]
    fit_ids: list[int]
    proposal_id: int
    alarm_id: int


def fit_record(estimate: float, sd: float) -> dict:
    theta = {
        name: Estimate(
            **{
                "estimate": estimate * k,
                "se": estimate * k * sd,
                "ci95": [estimate * k * np.exp(-1.96 * sd), estimate * k * np.exp(1.96 * sd)],
                "rse_percent": 100 * sd,
            }
        )
        for name, k in (("vmax", 1.0), ("km", 10.0))
    }
    return FitRecord(
        model="liver_chip",
        model_version="1.0.0",
        method="individual",
        converged=True,
        minus2ll=12.5,
        n_observations=40,
        n_subjects=1,
        n_estimated=3,
        theta=theta,
        sigma={"prop": 0.1},
        correlation={"names": ["vmax", "km", "prop"], "matrix": [[1, 0.8, 0.1], [0.8, 1, 0.0], [0.1, 0, 1]]},
        warnings=["km is poorly identified (RSE > 50 %)"],
    ).to_dict()


def _fill(url: str) -> Lab:
    engine = make_engine(url, create=True)
    upgrade(engine)
    with session(engine) as s:
        rig = Rig(name="bench-1", created_utc_s=T0)
        s.add(rig)
        s.flush()
        pump = Instrument(rig_id=rig.id, name="pump-1", driver="ne1000", address="/dev/ttyUSB0", connection_state="ok")
        sensor = Instrument(
            rig_id=rig.id, name="o2-bus", driver="modbus", address="tcp://127.0.0.1:5020", connection_state="lost"
        )
        chips = [Chip(rig_id=rig.id, name=f"liver-{i}", organ="liver", v_medium_ml=1.0, v_cell_ml=0.05) for i in (1, 2)]
        s.add_all([pump, sensor, *chips])
        s.flush()
        channels = [
            Channel(
                rig_id=rig.id,
                chip_id=chip.id,
                instrument_id=sensor.id,
                name=f"{chip.name}/{q}",
                quantity=q,
                unit=u,
                poll_period_s=10.0,
            )
            for chip in chips
            for q, u in (("oxygen", "percent"), ("teer", "ohm*cm^2"), ("pressure", "mbar"))
        ]
        run = ProtocolRun(
            rig_id=rig.id,
            protocol_text="dose then sample",
            protocol_sha256="0" * 64,
            state="running",
            started_utc_s=T0,
            clock_rate=1.0,
        )
        s.add_all([*channels, run])
        s.flush()
        dose = DoseEvent(
            run_id=run.id,
            chip_id=chips[0].id,
            drug="acetaminophen",
            t_utc_s=T0 + 1800,
            amount_nmol=50.0,
            volume_ml=0.01,
        )
        s.add_all([dose, Sample(label="S-1", run_id=run.id, chip_id=chips[0].id, t_utc_s=T0 + 3600, volume_ml=0.05)])
        fits = [
            Fit(
                run_id=run.id,
                model="liver_chip",
                model_version="1.0.0",
                method="individual",
                record_json=json.dumps(fit_record(e, sd)),
                minus2ll=12.5,
                converged=True,
                warnings_json='["km is poorly identified (RSE > 50 %)"]',
                created_utc_s=T0 + k * 600,
            )
            for k, (e, sd) in enumerate(((2.0, 0.6), (1.6, 0.3)))
        ]
        s.add_all(fits)
        s.flush()
        proposal = Proposal(
            run_id=run.id,
            fit_id=fits[-1].id,
            design_json=json.dumps({"dose_nmol": 80, "at_h": 2}),
            predicted_json=json.dumps({"viability_24h": 0.8}),
            expected_information_gain=0.42,
            created_utc_s=T0 + 1300,
        )
        alarm = Alarm(
            rig_id=rig.id,
            run_id=run.id,
            t_utc_s=T0 + 900,
            severity="warning",
            source="o2-bus",
            message="oxygen sensor silent for 60 s",
        )
        s.add_all([proposal, alarm])
        s.flush()
        seal_row(s.connection(), "doseevent", dose.id, "runner", "dose.confirmed")  # as the runner's intent log does
        s.commit()
        lab = Lab(
            url,
            rig.id,
            run.id,
            [c.id for c in chips],
            [c.id for c in channels],
            [f.id for f in fits],
            proposal.id,
            alarm.id,
        )
    times = T0 + np.arange(0, 7200, 10.0)
    ingest_readings(
        engine,
        (ReadingIn(cid, float(t), 80.0 + np.sin(t / 600) + k) for k, cid in enumerate(lab.channel_ids) for t in times),
    )
    for name, password in PASSWORDS.items():
        add_user(engine, name, ROLES[name], password, display_name=name.title())
    engine.dispose()
    return lab


@pytest.fixture
def lab(tmp_path, monkeypatch) -> Lab:
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    monkeypatch.setenv("CHIPTWIN_DB", url)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "audit.key"))  # the audit key stays in the test's folder
    yield _fill(url)
    dispose_engines()


def app_signed_in(username: str | None) -> AppTest:
    """The panel after signing in through its own form (None: a visitor who did not sign in)."""
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    if username is not None:
        app.text_input(key="username").input(username)
        app.text_input(key="password").input(PASSWORDS[username])
        app.button[0].click().run()
        assert not app.exception, app.exception
    return app


def on_page(app: AppTest, page: str) -> AppTest:
    app.switch_page(f"pages/{page}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def texts(app: AppTest) -> str:
    """Every visible text of the page, for assertions about what a user reads."""
    parts = [
        e.value
        for kind in ("title", "subheader", "markdown", "caption", "info", "success", "warning", "error")
        for e in getattr(app, kind)
    ]
    return "\n".join(str(p) for p in parts)


def charts(app: AppTest) -> list:
    return list(app.get("vega_lite_chart"))


def chart_frames(chart) -> list:
    """The data frames a chart was sent with (Streamlit moves Altair's datasets into Arrow tables)."""
    import pyarrow as pa

    return [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]


TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
ASSAY_TIMES_H = (0.75, 1.5, 2.5, 4.0, 6.0, 8.0)  # since the run started; the dose is at 0.5 h


@pytest.fixture
def calibrated_lab(lab: Lab) -> Lab:
    """``lab`` plus what a calibrate step leaves: drug and metabolite assays of chip liver-1 (the
    twin's truth, 10 % noise) and a Fit of vmax and km made by the closed loop's own calibrate."""
    from sqlalchemy import insert, update

    from protocols.loop.decide import calibrate
    from store.schema import AssayResult
    from twin.chip import Dose, simulate_chip
    from twin.chip import Sample as SampleEvent

    engine = make_engine(lab.url)
    chip_id = lab.chip_ids[0]
    samples = sorted([(1.0, 0.05)] + [(t, 0.02) for t in ASSAY_TIMES_H])  # the fixture's S-1, then the assays
    events = [Dose(0.5, 50.0, 0.01)] + [SampleEvent(t, v) for t, v in samples]
    truth = simulate_chip(
        TRUTH,
        events,
        np.array(ASSAY_TIMES_H) - 1e-9,
        {"V_m0": 1.0, "V_c": 0.05, "N_cells": 1.0},
        ["drug_medium", "metabolite_medium"],
    )
    rng = np.random.default_rng(7)
    with engine.begin() as c:
        c.execute(update(Chip).where(Chip.id == chip_id).values(n_cells_million=1.0))
        for k, t_h in enumerate(ASSAY_TIMES_H):
            sample_id = c.execute(
                insert(Sample).values(
                    label=f"A-{k}", run_id=lab.run_id, chip_id=chip_id, t_utc_s=T0 + 3600 * t_h, volume_ml=0.02
                )
            ).inserted_primary_key[0]
            for analyte in ("drug_medium", "metabolite_medium"):
                value = float(truth[analyte][k]) * (1 + 0.1 * rng.standard_normal())
                c.execute(
                    insert(AssayResult).values(
                        sample_id=sample_id, analyte=analyte, value=value, unit="uM", imported_utc_s=T0 + 3600 * 9
                    )
                )
    now = T0 + 3600 * 10
    per_chip, rows = calibrate(engine, lab.run_id, now, ["vmax", "km"], ["liver-1"])
    record = FitRecord.from_dict(per_chip["liver-1"].to_dict())  # the step's record holds every chip's
    record.chips = dict(per_chip)
    with engine.begin() as c:
        fit_id = fit_records.add(
            c,
            NewFit(
                model="liver_chip",
                model_version=record.model_version,
                method="individual",
                record_json=record.to_json(),
                minus2ll=record.minus2ll,
                aic=record.aic,
                bic=record.bic,
                converged=record.converged,
                wall_time_s=record.wall_time_s,
                created_utc_s=now,
                warnings=record.warnings,
                run_id=lab.run_id,
                chips=("liver-1",),
                n_rows=rows,
            ),
        )
    engine.dispose()
    lab.fit_ids.append(fit_id)
    return lab
