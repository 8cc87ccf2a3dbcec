"""The covariance step of a fit: the observed information at the estimate, and the hand-over.

Scoring (``calibration.estimate.scoring``) hands over below HANDOVER_DECREMENT; its last full step
is taken unchecked and the covariance step's own model run checks it: accepted when the Newton
decrement there is below FINISHED_DECREMENT (−2LL within 1e-5 of its minimum, every parameter
within 0.005 standard errors of it), else scoring goes on to its full tolerance. The observed
information is central differences of the analytic gradient, all perturbed parameter sets of all
problems in one batched model run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from calibration.estimate.scoring import (
    STRAIGHT_STEP,
    ScoringResult,
    box,
    derivatives,
    fisher_scoring,
    into_box,
    objective_from,
)

if TYPE_CHECKING:
    from calibration.estimate.individual import IndividualProblem

HANDOVER_DECREMENT = 1e-3
FINISHED_DECREMENT = 1e-5


def scoring_with_information(
    problems: "Sequence[IndividualProblem]", results: Sequence[ScoringResult], rel_step: float = 1e-3
) -> list[tuple[ScoringResult, np.ndarray]]:
    """Each scoring result (stopped at ``HANDOVER_DECREMENT``) finished and its observed information.

    The last full scoring step of each is taken unchecked, and the covariance step's run (the new
    point and its 2·n_model neighbours, all problems in one batched run) checks it: its centre gives
    the value, gradient and decrement there. A step that does not reach ``FINISHED_DECREMENT``
    (or makes the objective worse) is refitted to ``FIT_DECREMENT_TOL`` and gets its own covariance
    step. A fit and its covariance step so cost one batched run less than two, often three.
    """
    finals = [_last_step(problem, result) for problem, result in zip(problems, results)]
    runs = _information_runs(problems, [x for x, _ in finals], rel_step)
    out = []
    for problem, result, (x, moved), (points, run) in zip(problems, results, finals, runs):
        if moved:
            f, df = run[0]
            value = objective_from(problem, x, f)
            gradient, hessian = derivatives(problem, x, f, df)[:2]
            # the check's run is not the fit's (other steps): its value may differ by integrator noise
            better = value <= result.value + HANDOVER_DECREMENT
            if better and _decrement(problem, x, gradient, hessian) < FINISHED_DECREMENT:
                done = ScoringResult(x, value, hessian, gradient, result.iterations + 1, True, result.runs + 1)
                out.append((done, _hessian(problem, points, run, rel_step)))
                continue
            start = x if better else result.x
        elif (
            result.converged
            and result.gradient is not None
            and result.hessian is not None
            and _decrement(problem, result.x, result.gradient, result.hessian) >= FINISHED_DECREMENT
        ):
            start = result.x  # stopped at the handover but its last step is long: scoring goes on
        else:
            out.append((result, _hessian(problem, points, run, rel_step)))  # as scoring left it
            continue
        done = fisher_scoring(problem, start)  # rare: the unchecked step fell short
        out.append((done, observed_information(problem, done.x, rel_step)))
    return out


def _last_step(problem: "IndividualProblem", result: ScoringResult) -> tuple[np.ndarray, bool]:
    """The point after one more full scoring step from a converged-to-handover result (and whether it
    moved): a plain Gauss–Newton step on the free coordinates, kept in the box."""
    if not result.converged or result.gradient is None or result.hessian is None or not np.isfinite(result.value):
        return result.x, False
    low, high = box(problem)
    x, g = result.x, result.gradient
    free = ~(((x <= low + 1e-9) & (g > 0)) | ((x >= high - 1e-9) & (g < 0)))
    v = np.zeros_like(x)
    v[free] = np.linalg.lstsq(result.hessian[np.ix_(free, free)], -g[free], rcond=None)[0]
    v = into_box(x, v, low, high)
    if not np.all(np.isfinite(v)) or np.max(np.abs(v)) > STRAIGHT_STEP:
        return result.x, False  # not a last step: the ordinary finish
    return np.clip(x + v, low, high), bool(np.any(v != 0))


def _decrement(problem: "IndividualProblem", x: np.ndarray, gradient: np.ndarray, hessian: np.ndarray) -> float:
    """½·gᵀH⁻¹g over the coordinates not pressed against a bound (what scoring stops on)."""
    low, high = box(problem)
    free = ~(((x <= low + 1e-9) & (gradient > 0)) | ((x >= high - 1e-9) & (gradient < 0)))
    g = gradient[free]
    if g.size == 0:
        return 0.0
    value = float(0.5 * g @ np.linalg.lstsq(hessian[np.ix_(free, free)], g, rcond=None)[0])
    return value if np.isfinite(value) else np.inf


def observed_information(problem: "IndividualProblem", x: np.ndarray, rel_step: float = 1e-3) -> np.ndarray:
    """The observed Hessian of −2LL (+ prior): central differences of the exact gradient.

    All 2·n_model perturbed parameter sets go through one batched sensitivity run; the σ
    columns need no run (the gradient is analytic in log σ given f).
    """
    return observed_information_many([problem], [x], rel_step)[0]


def observed_information_many(
    problems: "Sequence[IndividualProblem]", xs: Sequence[np.ndarray], rel_step: float = 1e-3
) -> list[np.ndarray]:
    """``observed_information`` of several problems, all their perturbed sets in one batched run when
    the problems' ``predict_jacobian`` has a ``joint`` runner (one run per problem otherwise)."""
    runs = _information_runs(problems, xs, rel_step)
    return [_hessian(problem, points, run, rel_step) for problem, (points, run) in zip(problems, runs)]


def _information_runs(
    problems: "Sequence[IndividualProblem]", xs: Sequence[np.ndarray], rel_step: float
) -> list[tuple[list[np.ndarray], list]]:
    """Per problem: x and its 2·n_model neighbours (``_shifted``), and their (f, ∂f) from the runs."""
    shifted = [_shifted(problem, x, rel_step) for problem, x in zip(problems, xs)]
    joint = getattr(problems[0].predict_jacobian, "joint", None)
    with np.errstate(all="ignore"):
        if len(problems) > 1 and joint is not None:
            flat = joint(
                [
                    (problem.predict_jacobian, problem.parameters(z))
                    for problem, zs in zip(problems, shifted)
                    for z in zs
                ],
                tight=True,
            )
            runs = [flat[k * len(zs) : (k + 1) * len(zs)] for k, zs in enumerate(shifted)]
        else:
            runs = [
                problem.predict_jacobian([problem.parameters(z) for z in zs], tight=True)
                for problem, zs in zip(problems, shifted)
            ]
    return list(zip(shifted, runs))


def _shifted(problem: "IndividualProblem", x: np.ndarray, rel_step: float) -> list[np.ndarray]:
    """x, then x ± rel_step along each model coordinate."""
    points = [np.array(x, dtype=float)]
    for k in range(problem.n_model):
        for sign in (1, -1):
            z = np.array(x, dtype=float)
            z[k] += sign * rel_step
            points.append(z)
    return points


def _hessian(problem: "IndividualProblem", points: list[np.ndarray], runs: list, rel_step: float) -> np.ndarray:
    x, shifted = points[0], points[1:]
    n_model, n_x = problem.n_model, x.size
    f0, df0 = runs[0]
    hessian = np.zeros((n_x, n_x))
    for k in range(n_model):
        up = derivatives(problem, shifted[2 * k], *runs[1 + 2 * k])[0]
        down = derivatives(problem, shifted[2 * k + 1], *runs[2 + 2 * k])[0]
        hessian[:, k] = (up - down) / (2 * rel_step)
    for k in range(n_model, n_x):
        up, down = np.array(x, dtype=float), np.array(x, dtype=float)
        up[k] += rel_step
        down[k] -= rel_step
        hessian[:, k] = (derivatives(problem, up, f0, df0)[0] - derivatives(problem, down, f0, df0)[0]) / (2 * rel_step)
    return (hessian + hessian.T) / 2
