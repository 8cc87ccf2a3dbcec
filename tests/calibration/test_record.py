"""Fit records are typed: estimates with their units, chips, profiles and MCMC as fields; stored
records of any age read back into the same types."""

from __future__ import annotations

import json

from calibration.io.record import Estimate, FitRecord, McmcSummary, ProfileSummary, chip_documents


def _record(**extra) -> FitRecord:
    theta = {"vmax": Estimate(2.0, 0.2, [1.6, 2.4], 10.0), "km": Estimate(10.0)}
    return FitRecord("liver_chip", "1.0.0", "individual", True, 12.5, 20, 1, 2, theta, {"prop": 0.1}, **extra)


def test_estimates_carry_the_catalogue_units():
    record = _record()
    assert (record.theta["vmax"].unit, record.theta["km"].unit) == ("nmol/h", "uM")
    assert record.to_dict()["theta"]["km"] == {
        "estimate": 10.0,
        "se": None,
        "ci95": None,
        "rse_percent": None,
        "unit": "uM",
    }
    custom = FitRecord("not_in_catalogue", "", "individual", True, 0.0, 0, 1, 1, {"a": Estimate(1.0)}, {})
    assert custom.theta["a"].unit == ""


def test_a_record_round_trips_through_its_json_with_every_typed_field():
    profile = ProfileSummary(2.0, [1.5, None], [1.5, 2.0, 3.0], [3.9, 0.0, 2.1], 3.84, ["open above"])
    mcmc = McmcSummary.from_dict(
        {
            "sampler": "emcee",
            "n_walkers": 8,
            "n_steps": 100,
            "burn": 50,
            "n_draws": 400,
            "acceptance_fraction": 0.4,
            "autocorr_time": None,
            "autocorr_reliable": False,
            "summary": {"vmax": {"median": 2.0, "ci95": [1.7, 2.3], "log_mean": 0.69, "log_sd": 0.08}},
        }
    )
    record = _record(chips={"chip1": _record(), "chip2": _record()}, profiles={"vmax": profile}, mcmc=mcmc)
    again = FitRecord.from_dict(json.loads(record.to_json()))
    assert again == record
    assert isinstance(again.chips["chip2"].theta["vmax"], Estimate)
    assert again.mcmc is not None and again.mcmc.summary["vmax"].ci95 == [1.7, 2.3]
    assert again.profiles["vmax"].ci95 == [1.5, None]


def test_a_record_stored_before_the_typed_fields_reads_into_them():
    old = _record().to_dict()
    del old["chips"], old["profiles"], old["mcmc"]
    old["data_selection"] = {
        "fixed": {"ps": 0.5},
        "chips": {"chip1": _record().to_dict()},
        "profiles": {
            "km": {
                "estimate": 10.0,
                "ci95": [None, 30.0],
                "threshold": 3.84,
                "values": [10.0],
                "delta_minus2ll": [0.0],
                "notes": [],
            }
        },
    }
    record = FitRecord.from_dict(old)
    assert set(record.chips) == {"chip1"} and record.profiles["km"].ci95 == [None, 30.0]
    assert record.data_selection == {"fixed": {"ps": 0.5}}  # only which data were fitted is left there
    assert set(chip_documents(old)) == {"chip1"} and set(chip_documents(record.to_dict())) == {"chip1"}
    assert chip_documents(_record().to_dict()) == {"": _record().to_dict()}
