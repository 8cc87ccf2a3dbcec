"""Profile likelihood (MODELS.md §4): the honest interval of a parameter the Hessian cannot pin down.

For one parameter θ_i the profile is min over the others of −2LL, with θ_i fixed on a log
grid walked outward from the estimate (each point warm-started from the previous one). The
likelihood-based 95 % interval is where Δ(−2LL) = χ²₁(0.95) = 3.84. An end the profile
never reaches is reported as open ("no upper limit within the bounds"), never invented.

    profile = profile_parameter(problem, x_hat, "km")
    attach_profiles(problem, record)            # every parameter the record flags
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import minimize

from calibration.estimate.individual import IndividualProblem
from calibration.estimate.scoring import (
    Evaluator,
    derivatives,
    fisher_scoring,
    fisher_scoring_many,
    objective_from,
)
from calibration.io.record import FitRecord, ProfileSummary

CHI2_95 = 3.841458820694124  # χ²₁ 95 % quantile
MAX_STEPS = 14  # per side
# A profile point's −2LL is wanted to ~1e-3 (its threshold is 3.84): the restricted fit stops when a
# full step would gain less than this (a full fit uses 1e-6).
PROFILE_DECREMENT_TOL = 1e-4
MAX_LOG_SPAN = np.log(1e3)  # without a bound, walk at most three decades each way
_FLAGS = (re.compile(r"poorly identified: (\S+) has"), re.compile(r"not identified: the data do not separate (.+?);"))


class ProfileCancelled(Exception):
    """``should_stop`` said stop: raised between two profile points (no point is cut short)."""


class _Hook:
    """The caller's ``should_stop`` (asked before each point) and ``progress(done, total)`` (after each
    point; ``total`` is the most points still possible, so it only falls, to ``done`` at the end)."""

    def __init__(
        self, should_stop: Callable[[], bool] | None, progress: Callable[[int, int], None] | None, total: int
    ) -> None:
        self.should_stop, self.progress, self.done, self.total = should_stop, progress, 0, total

    def before(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise ProfileCancelled(f"stopped after {self.done} of at most {self.total} profile points")

    def after(self) -> None:
        self.done += 1
        self._tell()

    def reached(self, done: int) -> None:
        """Points finish out of order (a batched grid): report each new count once."""
        while self.done < done:
            self.after()

    def shrink(self, unused: int) -> None:
        if unused:
            self.total -= unused
            self._tell()

    def _tell(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total)


@dataclass
class Profile:
    name: str
    estimate: float
    values: np.ndarray  # natural scale, ascending
    delta: np.ndarray  # Δ(−2LL) against the optimum
    lower: float | None = None
    upper: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def interval(self) -> tuple[float | None, float | None]:
        return self.lower, self.upper

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate,
            "ci95": [self.lower, self.upper],
            "threshold": CHI2_95,
            "values": self.values.tolist(),
            "delta_minus2ll": self.delta.tolist(),
            "notes": list(self.notes),
        }


def optimum(problem: IndividualProblem, record: FitRecord) -> np.ndarray:
    """The record's estimates as the problem's log-scale vector (model parameters, then residual SDs)."""
    return np.log(
        [record.theta[n].estimate for n in problem.names] + [record.sigma[s] for s in problem.error.parameter_names]
    )


def profile_parameter(
    problem: IndividualProblem,
    x_hat: np.ndarray,
    name: str,
    *,
    step: float | None = None,
    threshold: float = CHI2_95,
    max_steps: int = MAX_STEPS,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Profile:
    """Walk θ_name down and up from the estimate until Δ(−2LL) passes ``threshold`` or a bound stops it.

    Each point re-optimises the other parameters from the previous point's optimum (warm start):
    by Fisher scoring on the exact sensitivities when the problem has them, else by L-BFGS-B.
    ``should_stop`` is asked before each point (True: ``ProfileCancelled``); ``progress(done, total)``
    is told after each one.
    """
    hook = _Hook(should_stop, progress, 2 * max_steps)
    i = problem.names.index(name)
    x_hat = np.asarray(x_hat, dtype=float)
    if problem.predict_jacobian is not None:
        problem = _Exact(problem)  # every value from the engine the fit used
    f_hat = problem.objective(x_hat)
    step = step or _first_step(problem, x_hat, i, f_hat)
    low, high = problem.log_bounds()[i]
    sides = {}
    for direction, bound in ((-1, low), (1, high)):
        sides[direction] = _walk(problem, x_hat, i, f_hat, direction, step, bound, threshold, max_steps, hook)
        hook.shrink(max_steps - len(sides[direction][0]))  # the points this side did not need
    return _assemble(name, x_hat[i], sides, threshold, (low, high))


def _assemble(name: str, estimate_log: float, sides: dict, threshold: float, bounds: tuple) -> Profile:
    """The profile from each side's points (log value, Δ) and why its walk stopped: ends, notes."""
    points = sorted([*sides[-1][0], (estimate_log, 0.0), *sides[1][0]])
    values, delta = np.exp([p[0] for p in points]), np.array([p[1] for p in points])
    prof = Profile(name, float(np.exp(estimate_log)), values, delta)
    prof.lower, note_low = _end(points[::-1], estimate_log, threshold, sides[-1][1], "lower", bounds[0])
    prof.upper, note_high = _end(points, estimate_log, threshold, sides[1][1], "upper", bounds[1])
    prof.notes += [n for n in (note_low, note_high) if n]
    if delta.min() < -0.1:
        better = values[int(np.argmin(delta))]
        prof.notes.append(
            f"the profile found a lower −2LL ({delta.min():.2f}) at {name} = {better:.4g}: "
            "the fit had not reached the optimum; refit with more starts (--starts)"
        )
    return prof


FIRST_ROUND = (1, 2, 3, 4, 5, 6, 8, 10)  # a side's first points, in first steps (≈ SE/3): past 3 SE
NEXT_ROUND = 4  # points a side that has not crossed adds per further round


def profile_lockstep(
    problem: IndividualProblem,
    x_hat: np.ndarray,
    name: str,
    *,
    threshold: float = CHI2_95,
    max_steps: int = MAX_STEPS,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Profile:
    """``profile_parameter``'s profile (its first step, bounds, span, ends and notes) on a planned set of
    points whose rounds are fitted together in lockstep (``fisher_scoring_many``: one batched run per
    scoring round for all of them), each from the profile's tangent at the optimum.

    A first round takes ``FIRST_ROUND`` points each side; a side that has not crossed ``threshold``
    (nor reached its bound or span) gets ``NEXT_ROUND`` more, striding out ×1.6 (at most 1 in log),
    up to ``max_steps``. ``should_stop`` is asked before each scoring round (True:
    ``ProfileCancelled``); ``progress(done, total)`` told as points finish, ``total`` the most points
    still possible. A problem without sensitivities is walked (``profile_parameter``)."""
    if problem.predict_jacobian is None:
        return profile_parameter(
            problem, x_hat, name, threshold=threshold, max_steps=max_steps, should_stop=should_stop, progress=progress
        )
    i = problem.names.index(name)
    x_hat = np.asarray(x_hat, dtype=float)
    hook = _Hook(should_stop, progress, 2 * max_steps)
    hook.before()
    f_hat, move, curvature = _tangent(problem, x_hat, i)
    # the walk's first step (about a third of the SE with the others held), from the expected information
    step = float(np.clip(np.sqrt(2 / curvature) / 3, 0.02, 0.5)) if curvature > 0 else 0.5
    low, high = problem.log_bounds()[i]
    plans = {d: _planned(x_hat[i], d, step, bound, max_steps) for d, bound in ((-1, low), (1, high))}
    hook.shrink(2 * max_steps - sum(len(plan) for plan, _ in plans.values()))
    sides: dict[int, tuple[list, str | None]] = {-1: ([], None), 1: ([], None)}
    while any(why is None for _, why in sides.values()):
        batch = []
        for d, (points, why) in sides.items():
            if why is None:
                size = len(FIRST_ROUND) if not points else NEXT_ROUND
                batch += [(d, value) for value in plans[d][0][len(points) : len(points) + size]]
        found = _fit_points(problem, x_hat, i, np.array([v for _, v in batch]), move, hook)
        for (d, value), f in zip(batch, found):
            sides[d][0].append((float(value), float(f - f_hat) if np.isfinite(f) else float("inf")))
        for d, (points, why) in list(sides.items()):
            if why is None:
                sides[d] = points, _stopped(points, len(plans[d][0]), plans[d][1], threshold)
                if sides[d][1] is not None:
                    hook.shrink(len(plans[d][0]) - len(points))
    return _assemble(name, x_hat[i], sides, threshold, (low, high))


def _planned(start: float, direction: int, step: float, bound: float | None, max_steps: int) -> tuple[list, str]:
    """A side's log values, outward (``FIRST_ROUND`` steps, then strides ×1.6 up to 1 in log), the last one
    at the bound or the span when it comes first; and what the last one is: 'bound', 'span' or 'steps'."""
    limit = bound if bound is not None else start + direction * MAX_LOG_SPAN
    offsets = [step * k for k in FIRST_ROUND[:max_steps]]
    while len(offsets) < max_steps:
        offsets.append(offsets[-1] + min((offsets[-1] - offsets[-2]) * 1.6, 1.0))
    values = []
    for offset in offsets:
        value = start + direction * offset
        if direction * (value - limit) >= 0:
            return [*values, limit], "bound" if bound is not None else "span"
        values.append(value)
    return values, "steps"


def _stopped(points: list, planned: int, last: str, threshold: float) -> str | None:
    """Why a side is finished ('crossed', 'bound', 'span'), or None while it needs more points."""
    if any(delta > threshold for _, delta in points):
        return "crossed"
    if len(points) >= planned:
        return "span" if last == "steps" else last
    return None


def _first_step(problem: IndividualProblem, x_hat: np.ndarray, i: int, f_hat: float) -> float:
    """About a third of the log-scale SE from the curvature along θ_i (others held), within [0.02, 0.5]."""
    h = 1e-2
    e = np.zeros_like(x_hat)
    e[i] = h
    curvature = (problem.objective(x_hat + e) - 2 * f_hat + problem.objective(x_hat - e)) / h**2
    if not np.isfinite(curvature) or curvature <= 0:
        return 0.5
    return float(np.clip(np.sqrt(2 / curvature) / 3, 0.02, 0.5))


class _Exact:
    """A problem with sensitivities, seen through one scoring evaluator: objective values and
    restricted optima come from the same solver, so Δ(−2LL) is not a difference of two engines."""

    def __init__(self, problem: IndividualProblem) -> None:
        self.problem, self.evaluator = problem, Evaluator(problem)
        self.names, self.predict_jacobian = problem.names, problem.predict_jacobian

    def log_bounds(self):
        return self.problem.log_bounds()

    def objective(self, x: np.ndarray) -> float:
        return objective_from(self.problem, x, self.evaluator.predict(x))

    def restricted_optimum(self, x: np.ndarray, i: int) -> tuple[np.ndarray, float]:
        held = np.zeros(x.size, dtype=bool)
        held[i] = True
        start = self._along_tangent(x, i)
        result = fisher_scoring(
            self.problem, start, evaluator=self.evaluator, held=held, decrement_tol=PROFILE_DECREMENT_TOL
        )
        if result.hessian is not None:
            self._last = (result.x.copy(), result.hessian)
        return result.x, result.value

    _last: tuple[np.ndarray, np.ndarray] | None = None

    def _along_tangent(self, x: np.ndarray, i: int) -> np.ndarray:
        """The start for the next profile point: when ``x`` is the last optimum with θ_i moved by δ,
        the other coordinates follow the profile's tangent, −H_oo⁻¹·H_oi·δ (fewer scoring steps)."""
        if self._last is None:
            return x
        last, hessian = self._last
        others = np.arange(x.size) != i
        if not np.array_equal(x[others], last[others]):
            return x
        start = np.array(x, dtype=float)
        with np.errstate(all="ignore"):
            move = -np.linalg.lstsq(hessian[np.ix_(others, others)], hessian[others, i], rcond=None)[0]
        shift = move * (x[i] - last[i])
        if np.all(np.isfinite(shift)) and np.max(np.abs(shift)) < 1.0:  # a sane extrapolation only
            start[others] += shift
        return start


def _walk(problem, x_hat, i, f_hat, direction, step, bound, threshold, max_steps, hook=None):
    """Points (log value, Δ) in one direction, and why the walk stopped: 'crossed', 'bound' or 'span'."""
    hook = hook or _Hook(None, None, max_steps)
    if isinstance(problem, _Exact):
        return _walk_exact(problem, x_hat, i, f_hat, direction, step, bound, threshold, max_steps, hook)
    others = [k for k in range(x_hat.size) if k != i]
    bounds = [problem.log_bounds()[k] for k in others]
    x, points = x_hat.copy(), []
    limit = bound if bound is not None else x_hat[i] + direction * MAX_LOG_SPAN
    for _ in range(max_steps):
        hook.before()
        target = x[i] + direction * step
        at_end = direction * (target - limit) >= 0
        target = limit if at_end else target
        x[i] = target

        def restricted(z, x=x):
            full = x.copy()
            full[others] = z
            return problem.objective(full)

        result = minimize(
            restricted,
            x[others],
            method="L-BFGS-B",
            jac="3-point",
            bounds=bounds,
            options={"maxiter": 200, "ftol": 1e-10, "gtol": 1e-5},
        )
        if np.isfinite(result.fun):
            x[others] = result.x
        delta = float(min(result.fun, restricted(x[others])) - f_hat)
        points.append((float(x[i]), delta))
        hook.after()
        if delta > threshold:
            return points, "crossed"
        if at_end:
            return points, "bound" if bound is not None else "span"
        if len(points) >= 2 and delta - points[-2][1] < threshold / 8:
            step = min(step * 1.6, 1.0)  # flat: stride out
    return points, "span"


def _walk_exact(problem: _Exact, x_hat, i, f_hat, direction, step, bound, threshold, max_steps, hook):
    """``_walk`` by Fisher scoring with θ_i held, each point warm-started from the last optimum."""
    x, points = x_hat.copy(), []
    limit = bound if bound is not None else x_hat[i] + direction * MAX_LOG_SPAN
    for _ in range(max_steps):
        hook.before()
        target = x[i] + direction * step
        at_end = direction * (target - limit) >= 0
        x[i] = limit if at_end else target
        z, value = problem.restricted_optimum(x, i)
        if np.isfinite(value):
            x = z
        delta = float(value - f_hat) if np.isfinite(value) else float("inf")
        points.append((float(x[i]), delta))
        hook.after()
        if delta > threshold:
            return points, "crossed"
        if at_end:
            return points, "bound" if bound is not None else "span"
        if len(points) >= 2 and delta - points[-2][1] < threshold / 8:
            step = min(step * 1.6, 1.0)  # flat: stride out
    return points, "span"


def _end(points, x0, threshold, why, side, bound):
    """Interpolate the crossing (log scale) on the ``side`` of ``points`` ordered outward from x0."""
    outward = [p for p in points if (p[0] >= x0 if side == "upper" else p[0] <= x0)]
    for (xa, da), (xb, db) in zip(outward, outward[1:]):
        if da <= threshold < db:
            return float(np.exp(xa + (threshold - da) * (xb - xa) / (db - da))), None
    reach = float(np.exp(outward[-1][0]))
    last = outward[-1][1]
    if why == "bound":
        return None, (f"no {side} limit within the bounds: Δ(−2LL) is {last:.2f} at the {side} bound {reach:.4g}")
    return None, f"no {side} limit found up to {reach:.4g} (Δ(−2LL) {last:.2f} there): the profile stays flat"


def flagged_parameters(problem: IndividualProblem, record: FitRecord) -> list[str]:
    """Model parameters named by the record's "poorly identified" / "not identified" warnings."""
    names: list[str] = []
    for warning in record.warnings:
        for pattern in _FLAGS:
            match = pattern.search(warning)
            if match:
                names += [n.strip() for n in match.group(1).split(" and ")]
    return [n for n in dict.fromkeys(names) if n in problem.names]


def attach_profiles(
    problem: IndividualProblem,
    record: FitRecord,
    names: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Profile]:
    """Profile ``names`` (default: the flagged ones) and write them into the record.

    Into ``record.profiles`` (the whole profile), each ``theta[name].ci95_profile``,
    and ``record.warnings`` for an open end or a better optimum found on the way.
    """
    names = flagged_parameters(problem, record) if names is None else list(names)
    x_hat = optimum(problem, record)
    profiles = {}
    for k, name in enumerate(names):
        profiles[name] = prof = profile_parameter(problem, x_hat, name)
        record.theta[name].ci95_profile = [prof.lower, prof.upper]
        record.warnings += [f"profile likelihood of {name}: {note}" for note in prof.notes]
        if progress:
            progress(k + 1, len(names))
    record.profiles.update({n: ProfileSummary.from_dict(p.to_dict()) for n, p in profiles.items()})
    return profiles


def profile_grid(
    problem: IndividualProblem,
    x_hat: np.ndarray,
    name: str,
    values: np.ndarray,
    *,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Profile:
    """Δ(−2LL) at given values of θ_name (natural scale). With exact sensitivities all points are
    fitted together (one batched run per scoring round); otherwise one by one, outward from the
    estimate, each warm-started from its neighbour's optimum. ``should_stop`` is asked before each
    round (each point), ``progress(done, total)`` told as points finish."""
    i = problem.names.index(name)
    x_hat = np.asarray(x_hat, dtype=float)
    logs = np.log(np.asarray(values, dtype=float))
    hook = _Hook(should_stop, progress, logs.size)
    if problem.predict_jacobian is not None:
        f_hat, found = _grid_batched(problem, x_hat, i, logs, hook)
    else:
        f_hat, found = _grid_walked(problem, x_hat, i, logs, hook)
    order = np.argsort(logs)
    return Profile(name, float(np.exp(x_hat[i])), np.exp(logs[order]), (found - f_hat)[order])


def _grid_batched(problem: IndividualProblem, x_hat: np.ndarray, i: int, logs: np.ndarray, hook: _Hook):
    """Every grid point's restricted fit at once (``_fit_points``). −2LL at the optimum and at each point."""
    f_hat, move, _ = _tangent(problem, x_hat, i)
    found = _fit_points(problem, x_hat, i, logs, move, hook)
    hook.reached(logs.size)
    return f_hat, found


def _tangent(problem: IndividualProblem, x_hat: np.ndarray, i: int) -> tuple[float, np.ndarray, float]:
    """−2LL at the optimum, the profile's tangent there, −H_oo⁻¹·H_oi (expected information: how the
    other coordinates follow θ_i), and the curvature H_ii along θ_i."""
    evaluator = Evaluator(problem)
    f = evaluator.predict(x_hat)
    f_hat = objective_from(problem, x_hat, f)
    hessian = derivatives(problem, x_hat, f, evaluator.jacobian(x_hat, f))[1]
    others = np.arange(x_hat.size) != i
    with np.errstate(all="ignore"):
        move = -np.linalg.lstsq(hessian[np.ix_(others, others)], hessian[others, i], rcond=None)[0]
    return f_hat, move, float(hessian[i, i])


def _fit_points(
    problem: IndividualProblem, x_hat: np.ndarray, i: int, logs: np.ndarray, move: np.ndarray, hook: _Hook
) -> np.ndarray:
    """The restricted fits (θ_i held at each of ``logs``) all at once: ``fisher_scoring_many``, one batched
    run per round for all points, each started on the tangent. ``hook`` is asked before each round and
    told as points finish (counted on from its ``done``)."""
    others = np.arange(x_hat.size) != i
    starts = []
    for value in logs:
        start = x_hat.copy()
        start[i] = value
        shift = move * (value - x_hat[i])
        if np.all(np.isfinite(shift)) and np.max(np.abs(shift)) < 1.0:  # a sane extrapolation only
            start[others] += shift
        starts.append(start)
    done_before = hook.done

    def between_rounds(finished: int) -> None:
        hook.reached(done_before + finished)
        hook.before()

    results = fisher_scoring_many(
        problem, starts, held=~others, decrement_tol=PROFILE_DECREMENT_TOL, between_rounds=between_rounds
    )
    hook.reached(done_before + logs.size)
    return np.array([r.value for r in results])


def _grid_walked(problem: IndividualProblem, x_hat: np.ndarray, i: int, logs: np.ndarray, hook: _Hook):
    """Grid points one by one, outward from the estimate on each side, each warm-started from its
    neighbour's optimum (L-BFGS-B on the objective: problems without sensitivities)."""
    f_hat = problem.objective(x_hat)
    found = np.empty(logs.size)
    for side in (logs < x_hat[i], logs >= x_hat[i]):
        order = np.flatnonzero(side)[np.argsort(np.abs(logs[side] - x_hat[i]))]
        x = x_hat.copy()
        for k in order:
            hook.before()
            x[i] = logs[k]
            z, value = _restricted_lbfgs(problem, x, i)
            x = z if np.isfinite(value) else x
            found[k] = value
            hook.after()
    return f_hat, found


def _restricted_lbfgs(problem: IndividualProblem, x: np.ndarray, i: int) -> tuple[np.ndarray, float]:
    others = [k for k in range(x.size) if k != i]

    def restricted(z):
        full = x.copy()
        full[others] = z
        return problem.objective(full)

    result = minimize(
        restricted,
        x[others],
        method="L-BFGS-B",
        jac="3-point",
        bounds=[problem.log_bounds()[k] for k in others],
        options={"maxiter": 200, "ftol": 1e-10, "gtol": 1e-5},
    )
    full = x.copy()
    full[others] = result.x
    return full, float(result.fun)
