"""`chiptwin report` and `chiptwin export` on a real SQLite lab store holding a run with a real fit.

The store is the panel tests' ``calibrated_lab``: a run with a sealed dose, samples and assays of
chip liver-1, an alarm, a pending proposal, and a fit made by the closed loop's own calibrate step.
"""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select, text

from store import make_engine
from store.audit import verify_audit
from store.schema import AssayResult, DoseEvent, Fit, Sample
from tests.ui.test_cli_skeleton import chiptwin
from tests.ui.test_panel_support import app_signed_in, calibrated_lab, lab, on_page  # noqa: F401 (fixtures)
from twin.catalogue import get_model
from ui.unit_text import pretty_unit


def _pdf_text(path) -> tuple[str, int]:
    reader = PdfReader(path)
    return "\n".join(page.extract_text() for page in reader.pages), sum(len(page.images) for page in reader.pages)


def _scalar(url: str, query):
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(query).scalar()
    finally:
        engine.dispose()


def _number_after(name: str, unit: str, pdf_text: str) -> list[float]:
    """Every number printed as "<name> <number> <unit>" in the PDF's table text."""
    pattern = rf"(?m)^{re.escape(name)}\s*\n\s*([-+0-9.e]+) {re.escape(unit)}$"
    return [float(x) for x in re.findall(pattern, pdf_text)]


def test_the_report_holds_estimates_with_units_the_dose_count_and_the_audit_status(calibrated_lab, tmp_path):
    out = tmp_path / "run.pdf"
    result = chiptwin("report", str(calibrated_lab.run_id), "--db", calibrated_lab.url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    pdf_text, n_images = _pdf_text(out)

    fit = json.loads(_scalar(calibrated_lab.url, select(Fit.record_json).where(Fit.id == calibrated_lab.fit_ids[-1])))
    spec = get_model("liver_chip")
    theta = fit["chips"]["liver-1"]["theta"]
    for name in ("vmax", "km"):  # the calibrated fit's estimates, each with its unit and its 95 % interval
        unit = pretty_unit(spec.parameter(name).unit)
        printed = _number_after(name, unit, pdf_text)
        assert any(abs(p - theta[name]["estimate"]) <= 1e-3 * theta[name]["estimate"] for p in printed), (name, printed)
        low, high = theta[name]["ci95"]
        assert f"{low:.4g} – {high:.4g} {unit}" in pdf_text
    assert "µM" in pdf_text and "uM" not in pdf_text  # units as a person reads them

    doses = _scalar(
        calibrated_lab.url, select(func.count(DoseEvent.id)).where(DoseEvent.run_id == calibrated_lab.run_id)
    )
    assert f"Dose count: {doses} confirmed dose events" in pdf_text
    assays = _scalar(calibrated_lab.url, select(func.count(AssayResult.id)))
    assert f"assays ({assays})" in pdf_text
    engine = make_engine(calibrated_lab.url)
    audit = verify_audit(engine)
    engine.dispose()
    assert audit.intact and f"Audit chain status: INTACT — {audit.entries_checked} entries" in pdf_text
    flat = " ".join(pdf_text.split())  # table cells wrap
    assert "oxygen sensor silent for 60 s" in flat  # the run's alarm
    assert f"Proposal {calibrated_lab.proposal_id}: pending" in pdf_text
    assert "0" * 64 in pdf_text and "DOES NOT match" in pdf_text  # the fixture's protocol hash is not its text's
    assert n_images >= 1  # the chip fit's figure
    assert "audit chain intact" in result.stdout and f"{doses} doses" in result.stdout


def test_a_tampered_dose_makes_the_report_say_the_chain_is_broken(lab, tmp_path):
    engine = make_engine(lab.url)
    with engine.begin() as c:  # behind the program's back: the sealed dose row no longer matches its entry
        c.execute(text("UPDATE doseevent SET amount_nmol = amount_nmol * 10"))
    engine.dispose()
    out = tmp_path / "run.pdf"
    result = chiptwin("report", str(lab.run_id), "--db", lab.url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    pdf_text, _ = _pdf_text(out)
    assert "Audit chain status: BROKEN" in pdf_text and "doseevent" in pdf_text
    assert "audit chain BROKEN" in result.stdout


def test_an_unknown_run_is_one_line_and_exit_2(lab, tmp_path):
    result = chiptwin("report", "999", "--db", lab.url, "--out", str(tmp_path / "x.pdf"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no run 999" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_the_runs_assays_doses_and_samples(calibrated_lab, tmp_path, fmt):
    run = calibrated_lab.run_id
    expected = {
        "assays": _scalar(
            calibrated_lab.url, select(func.count(AssayResult.id)).join(Sample).where(Sample.run_id == run)
        ),
        "doses": _scalar(calibrated_lab.url, select(func.count(DoseEvent.id)).where(DoseEvent.run_id == run)),
        "samples": _scalar(calibrated_lab.url, select(func.count(Sample.id)).where(Sample.run_id == run)),
    }
    for what, rows in expected.items():
        out = tmp_path / f"{what}.{fmt}"
        result = chiptwin(
            "export", str(run), "--what", what, "--format", fmt, "--out", str(out), "--db", calibrated_lab.url
        )
        assert result.returncode == 0, result.stderr
        frame = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(io.BytesIO(out.read_bytes()))
        assert len(frame) == rows > 0, what
        assert f"{rows} rows of {what}" in result.stdout
    assays = pd.read_csv(tmp_path / "assays.csv") if fmt == "csv" else pd.read_parquet(tmp_path / "assays.parquet")
    assert set(assays["unit"]) == {"uM"} and set(assays["analyte"]) == {"drug_medium", "metabolite_medium"}
    doses = pd.read_csv(tmp_path / "doses.csv") if fmt == "csv" else pd.read_parquet(tmp_path / "doses.parquet")
    assert list(doses["amount_nmol"]) == [50.0] and list(doses["chip"]) == ["liver-1"]


def test_the_review_page_offers_the_runs_report(lab):
    app = on_page(app_signed_in("sam"), "review")
    buttons = [b for b in app.get("download_button") if "report" in b.proto.label.lower()]
    assert [b.proto.label for b in buttons] == ["Study report (PDF)"]


def test_export_of_the_lab_dataset_is_what_fit_reads(calibrated_lab, tmp_path):
    from calibration.io.lab import read_lab_dataset

    out = tmp_path / "lab.csv"
    result = chiptwin(
        "export", str(calibrated_lab.run_id), "--what", "lab", "--out", str(out), "--db", calibrated_lab.url
    )
    assert result.returncode == 0, result.stderr
    data = read_lab_dataset(out)
    assays = _scalar(calibrated_lab.url, select(func.count(AssayResult.id)).where(AssayResult.analyte == "drug_medium"))
    assert list(data["liver-1"].observables).count("drug_medium") == assays > 0


def test_a_dose_that_failed_is_in_the_report(lab, tmp_path):
    from sqlalchemy import insert

    from store.audit import seal_row
    from store.schema import Command

    engine = make_engine(lab.url)
    with engine.begin() as c:  # as the runner's intent log leaves a dose whose pump counter did not move
        command_id = c.execute(
            insert(Command).values(
                run_id=lab.run_id,
                idempotency_key="run1/step4/liver-2/a1",
                command="dispense",
                state="failed",
                requested_amount=20.0,
                amount_unit="uL",
                error="not dosed: the pump's counter did not move",
                created_utc_s=1.8e9 + 4000,
                updated_utc_s=1.8e9 + 4001,
            )
        ).inserted_primary_key[0]
        seal_row(c, "command", command_id, "runner", "command.failed")
    engine.dispose()
    out = tmp_path / "run.pdf"
    assert chiptwin("report", str(lab.run_id), "--db", lab.url, "--out", str(out)).returncode == 0
    flat = " ".join(_pdf_text(out)[0].split())
    assert "run1/step4/liver-2/a1" in flat.replace(" ", "")  # a narrow cell may wrap the key
    assert "20 µL" in flat and "pump's counter did not move" in flat
    assert "Intent log of the run: 1 failed." in flat and "Audit chain status: INTACT" in flat
