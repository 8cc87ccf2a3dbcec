"""Individual fits: honest intervals (coverage), warnings that are never buried, clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from calibration.errors import NoObservationsError, UnidentifiableError
from calibration.estimate.error_models import ErrorModel, minus2ll_terms
from calibration.estimate.individual import IndividualProblem, fit_individual

TIMES_H = np.array([0.25, 0.5, 1, 2, 4, 6, 8, 12, 24])
TRUTH = {"ka": 1.2, "cl": 3.0, "v": 30.0}
DOSE_MG = 100.0


def oral_cp(p: dict[str, float], t=TIMES_H) -> np.ndarray:
    k = p["cl"] / p["v"]
    return DOSE_MG * p["ka"] / (p["v"] * (p["ka"] - k)) * (np.exp(-k * t) - np.exp(-p["ka"] * t))


def noisy(rng, cv=0.15, p=TRUTH):
    f = oral_cp(p)
    return f * (1 + cv * rng.standard_normal(f.size))


def problem(dv, **kw) -> IndividualProblem:
    return IndividualProblem(
        ("ka", "cl", "v"),
        oral_cp,
        dv,
        ErrorModel("prop"),
        bounds={"ka": (0.01, 50), "cl": (0.01, 100), "v": (0.1, 1000)},
        **kw,
    )


def test_minus2ll_is_the_normal_log_density_without_the_constant():
    y, f, sd = np.array([1.0, 2.5]), np.array([1.2, 2.0]), np.array([0.3, 0.4])
    expected = -2 * stats.norm.logpdf(y, f, sd) - np.log(2 * np.pi)
    assert np.allclose(minus2ll_terms(y, f, sd**2), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "kind, sigma, f, variance",
    [("add", [0.5], [2.0], 0.25), ("prop", [0.1], [3.0], 0.09), ("comb", [0.5, 0.1], [3.0], 0.25 + 0.09)],
)
def test_error_model_variances(kind, sigma, f, variance):
    assert ErrorModel(kind).variance(np.array(f), np.array(sigma))[0] == pytest.approx(variance)


def test_a_fit_recovers_the_truth_and_writes_a_complete_record():
    rng = np.random.default_rng(3)
    record = fit_individual(problem(noisy(rng, cv=0.05)), {"ka": 0.5, "cl": 1.0, "v": 10.0}, n_starts=4)
    assert record.converged and record.warnings == []
    for name, true in TRUTH.items():
        low, high = record.theta[name].ci95
        assert low < true < high
        assert record.theta[name].estimate == pytest.approx(true, rel=0.15)
    document = json.loads(record.to_json())
    for key in (
        "model",
        "method",
        "converged",
        "warnings",
        "minus2ll",
        "minus2ll_with_constant",
        "aic",
        "bic",
        "theta",
        "omega",
        "sigma",
        "individual",
        "wall_time_s",
    ):
        assert key in document
    assert document["minus2ll_with_constant"] == pytest.approx(document["minus2ll"] + 9 * np.log(2 * np.pi))
    assert document["aic"] == pytest.approx(document["minus2ll_with_constant"] + 2 * 4)


def test_intervals_cover_the_truth_at_about_the_nominal_rate():
    rich_times = np.geomspace(0.1, 36, 24)
    rng = np.random.default_rng(11)
    hits, n = np.zeros(3), 60
    for _ in range(n):
        dv = oral_cp(TRUTH, rich_times) * (1 + 0.15 * rng.standard_normal(rich_times.size))
        p = IndividualProblem(("ka", "cl", "v"), lambda q: oral_cp(q, rich_times), dv, ErrorModel("prop"))
        record = fit_individual(p, {"ka": 1.0, "cl": 2.5, "v": 25.0})
        hits += [record.theta[k].ci95[0] < TRUTH[k] < record.theta[k].ci95[1] for k in ("ka", "cl", "v")]
    coverage = hits / n
    # 95 % nominal; 60 data sets give a binomial SD of 2.8 %, so 3 SD below is 0.866.
    assert np.all(coverage >= 0.866), coverage


def test_a_parameter_the_data_cannot_separate_is_flagged():
    # Only the product a·b is seen by the data: a and b are not separately identifiable.
    def product_model(p):
        return p["a"] * p["b"] * np.exp(-0.1 * TIMES_H)

    rng = np.random.default_rng(0)
    dv = 6.0 * np.exp(-0.1 * TIMES_H) * (1 + 0.05 * rng.standard_normal(TIMES_H.size))
    record = fit_individual(IndividualProblem(("a", "b"), product_model, dv, ErrorModel("prop")), {"a": 1.0, "b": 1.0})
    assert any("not identified" in w and "a" in w and "b" in w for w in record.warnings)
    assert record.theta["a"].se is None


def test_a_bound_hit_is_a_warning():
    rng = np.random.default_rng(1)
    p = IndividualProblem(
        ("ka", "cl", "v"),
        oral_cp,
        noisy(rng, 0.05),
        ErrorModel("prop"),
        bounds={"ka": (0.01, 50), "cl": (0.01, 100), "v": (0.1, 12.0)},
    )
    record = fit_individual(p, {"ka": 1.0, "cl": 3.0, "v": 10.0})
    assert any("v is at its upper bound 12" in w for w in record.warnings)


def test_more_parameters_than_data_is_refused_with_the_fix():
    with pytest.raises(UnidentifiableError, match="--fix"):
        IndividualProblem(("ka", "cl", "v"), oral_cp, np.array([1.0, 2.0, 3.0]), ErrorModel("prop"))
    with pytest.raises(NoObservationsError):
        IndividualProblem(("ka",), oral_cp, np.array([]), ErrorModel("add"))


def test_map_prior_pulls_an_unidentified_parameter_to_its_prior():
    def product_model(p):
        return p["a"] * p["b"] * np.exp(-0.1 * TIMES_H)

    dv = 6.0 * np.exp(-0.1 * TIMES_H)
    dv = dv * (1 + 0.02 * np.random.default_rng(2).standard_normal(dv.size))
    p = IndividualProblem(("a", "b"), product_model, dv, ErrorModel("prop"), prior={"a": (2.0, 0.1)})
    record = fit_individual(p, {"a": 1.0, "b": 1.0})
    assert record.theta["a"].estimate == pytest.approx(2.0, rel=0.05)
    assert record.theta["b"].estimate == pytest.approx(3.0, rel=0.1)
