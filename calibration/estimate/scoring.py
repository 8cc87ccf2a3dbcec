"""Fisher scoring (Gauss–Newton for the full −2LL, residual SDs included) in a trust region.

The optimiser of individual and pooled fits, profiles and sequential updates. For
−2LL = Σ log V + (y − f)²/V with V = V(f, σ), the gradient and the expected information
H = 2·Σ ∂f∂fᵀ/V + Σ ∂V∂Vᵀ/V² need only the Jacobian of the predictions ∂f/∂log θ:

- from the model's forward sensitivities (``IndividualProblem.predict_jacobian``: one batched
  solve gives predictions and Jacobian, exact to the integrator's tolerance), or
- from forward differences (n_model + 1 model runs) when the problem has none.

Steps are Levenberg steps of halving scaled length that hold the parameter bounds; long
steps get geodesic acceleration from one extra run: when data sit in a sloppy, curved valley
(liver_chip: km against kon/koff, information condition ~1e7) straight steps leave the valley
(Transtrum & Sethna 2012). At a stationary point the estimate is the maximum-likelihood (or
MAP) estimate; the iteration stops when the Newton decrement ½·gᵀH⁻¹g falls below a tolerance.

The log-scale σ derivatives are analytic (no model run); the prior adds its Gaussian terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Generator, Sequence

import numpy as np

from calibration.estimate.error_models import minus2ll_terms

if TYPE_CHECKING:
    from calibration.estimate.individual import IndividualProblem

STEP = 1e-3  # forward-difference step on the log parameters (problems without sensitivities)
GEODESIC_H = 0.1  # probe distance, as a fraction of the step, for the second directional derivative
STRAIGHT_STEP = 0.02  # log units: shorter steps go straight (no probe run)
MAX_BEND = 0.75  # reject a step whose acceleration term (½·a) exceeds 3/8 of its length (scaled)
MAX_LOG_STEP = 2.0  # at most a factor e² per step (a residual SD far too small asks for hundreds)
MAX_TRIALS = 12  # step attempts per iteration
FIT_DECREMENT_TOL = 1e-6  # −2LL units: a full fit stops when a full step would gain less than this


@dataclass
class ScoringResult:
    x: np.ndarray
    value: float
    hessian: np.ndarray | None  # expected information at x (all coordinates)
    gradient: np.ndarray | None
    iterations: int
    converged: bool
    runs: int


class Evaluator:
    """Model runs of one problem, counted; with sensitivities, a run also yields the Jacobian."""

    def __init__(self, problem: "IndividualProblem") -> None:
        self.problem = problem
        self.exact = problem.predict_jacobian is not None
        self.runs = 0
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    def predict(self, x: np.ndarray, jacobian: bool = True) -> np.ndarray:
        """Predictions at x; ``jacobian=False`` may skip the sensitivities (a probe, not a trial point)."""
        self.runs += 1
        with np.errstate(all="ignore"):
            plain = getattr(self.problem.predict_jacobian, "predict", None)
            if self.exact and not jacobian and plain is not None:
                return plain(self.problem.parameters(x))
            if self.exact:
                f, jac = self.problem.predict_jacobian([self.problem.parameters(x)])[0]
                self._cache = (np.array(x, dtype=float), f, jac)
                return f
            return self.problem.predict(self.problem.parameters(x))

    def jacobian(self, x: np.ndarray, f: np.ndarray) -> np.ndarray:
        """∂f/∂log θ (N, n_model): from the last run's sensitivities, or by forward differences."""
        if self.exact:
            n = self.problem.n_model  # f and ∂f do not depend on the residual SDs
            if self._cache is None or not np.array_equal(self._cache[0][:n], x[:n]):
                self.predict(x)
            return self._cache[2]
        n = self.problem.n_model
        df = np.zeros((f.size, n))
        for k in range(n):
            shifted = np.array(x, dtype=float)
            shifted[k] += STEP
            df[:, k] = (self.predict(shifted) - f) / STEP
        return df


def objective_from(problem: "IndividualProblem", x: np.ndarray, f: np.ndarray) -> float:
    """``problem.objective`` from predictions already made (no model run)."""
    with np.errstate(all="ignore"):
        value = float(np.sum(minus2ll_terms(problem.dv, f, problem.error.variance(f, np.exp(x[problem.n_model :])))))
    for i, name in enumerate(problem.names):
        if name in problem.prior:
            median, sd = problem.prior[name]
            value += ((x[i] - np.log(median)) / sd) ** 2
    return value if np.isfinite(value) else np.inf


def variance_derivatives(
    problem: "IndividualProblem", x: np.ndarray, f: np.ndarray, df: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """V (N,) and ∂V/∂x (N, n_x): through f for the model parameters, analytic in log σ."""
    n_model = problem.n_model
    sigma = np.exp(x[n_model:])
    variance = problem.error.variance(f, sigma)
    dv = np.zeros((f.size, x.size))
    dvdf = np.zeros_like(f)
    start = 0
    for group, model in problem.error.models.items():
        rows, size = problem.error.groups == group, len(model.parameter_names)
        s = sigma[start : start + size]
        dvdf[rows] = model.dvariance_df(f[rows], s)
        for k, name in enumerate(model.parameter_names):
            scale = np.ones(rows.sum()) if name == "add_sd" else f[rows] ** 2
            dv[rows, n_model + start + k] = 2 * s[k] ** 2 * scale  # ∂V/∂log σ_k
        start += size
    dv[:, :n_model] = dvdf[:, None] * df
    return variance, dv


def derivatives(
    problem: "IndividualProblem", x: np.ndarray, f: np.ndarray, df: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradient of −2LL (+ prior) and its expected Hessian; also ∂f/∂x (N, n_x) and the weights 1/V."""
    variance, dv = variance_derivatives(problem, x, f, df)
    dfx = np.zeros((f.size, x.size))
    dfx[:, : problem.n_model] = df
    r = problem.dv - f
    gradient = dv.T @ (1 / variance - r**2 / variance**2) - 2 * dfx.T @ (r / variance)
    hessian = 2 * dfx.T @ (dfx / variance[:, None]) + dv.T @ (dv / variance[:, None] ** 2)
    for i, name in enumerate(problem.names):
        if name in problem.prior:
            median, sd = problem.prior[name]
            gradient[i] += 2 * (x[i] - np.log(median)) / sd**2
            hessian[i, i] += 2 / sd**2
    return gradient, hessian, dfx, 1 / variance


def box(problem: "IndividualProblem") -> tuple[np.ndarray, np.ndarray]:
    bounds = problem.log_bounds()
    return (
        np.array([-np.inf if b[0] is None else b[0] for b in bounds]),
        np.array([np.inf if b[1] is None else b[1] for b in bounds]),
    )


def fisher_scoring(
    problem: "IndividualProblem",
    x0: np.ndarray,
    *,
    evaluator: Evaluator | None = None,
    held: np.ndarray | None = None,
    max_iterations: int = 100,
    decrement_tol: float = FIT_DECREMENT_TOL,
) -> ScoringResult:
    """Minimise −2LL (+ prior) from ``x0``; coordinates flagged in ``held`` stay where they are."""
    evaluator = evaluator or Evaluator(problem)
    runs_before = evaluator.runs
    steps = scoring_steps(problem, x0, held, max_iterations, decrement_tol)
    answer = None
    while True:
        try:
            request = steps.send(answer)
        except StopIteration as stop:
            result: ScoringResult = stop.value
            result.runs = evaluator.runs - runs_before
            return result
        if request[0] == "jacobian":
            answer = evaluator.jacobian(request[1], request[2])
        else:
            answer = evaluator.predict(request[1], jacobian=request[0] == "predict")


# What ``scoring_steps`` asks its driver for: ("predict", x) → f (with the Jacobian, for a trial
# point), ("probe", x) → f (no Jacobian needed), ("jacobian", x, f) → ∂f/∂log θ at the last trial.
Request = tuple


def scoring_steps(
    problem: "IndividualProblem",
    x0: np.ndarray,
    held: np.ndarray | None = None,
    max_iterations: int = 100,
    decrement_tol: float = FIT_DECREMENT_TOL,
) -> Generator[Request, object, ScoringResult]:
    """Fisher scoring as a generator of model-run requests, so that one driver can run it alone
    (``fisher_scoring``) and another many of them in lockstep, batching their runs
    (``fisher_scoring_many``). Returns the result (``runs`` left to the driver)."""
    low, high = box(problem)
    x = np.clip(np.asarray(x0, dtype=float), low, high)
    held = np.zeros(x.size, dtype=bool) if held is None else np.asarray(held, dtype=bool)
    f = yield ("predict", x)
    value = objective_from(problem, x, f)
    converged, iterations, hessian, gradient = False, 0, None, None
    if not np.isfinite(value):
        return ScoringResult(x, np.inf, None, None, 0, False, 0)
    x, value = sigma_given_predictions(problem, x, f, value, held)
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (the count is returned)
        gradient, hessian, df, weights = derivatives(problem, x, f, (yield ("jacobian", x, f)))
        free = ~held & ~(((x <= low + 1e-9) & (gradient > 0)) | ((x >= high - 1e-9) & (gradient < 0)))
        g, h = gradient[free], hessian[np.ix_(free, free)]
        if g.size == 0 or 0.5 * g @ np.linalg.lstsq(h, g, rcond=None)[0] < decrement_tol:
            converged = True
            break
        # Marquardt scaling (step lengths in conditional-SE-like units), floored for a parameter
        # the data no longer see
        scale = np.sqrt(np.maximum(np.diag(h), 1e-12 * np.max(np.diag(h))))
        radius = np.inf  # the full scoring step first; halved on every failure
        length = 0.0
        for _ in range(MAX_TRIALS):
            damped = h + levenberg(h, g, scale, radius) * np.diag(scale**2)
            v = np.zeros_like(x)
            v[free] = np.linalg.solve(damped, -g)
            v = into_box(x, v * (MAX_LOG_STEP / max(np.max(np.abs(v)), MAX_LOG_STEP)), low, high)
            length = np.linalg.norm(v[free] * scale)
            if length == 0.0:
                break  # the bounds leave no room to move: as stationary as this problem gets
            accel = np.zeros_like(x)
            if np.max(np.abs(v)) > STRAIGHT_STEP:
                f_h = yield ("probe", x + GEODESIC_H * v)
                f_vv = 2 / GEODESIC_H * ((f_h - f) / GEODESIC_H - df @ v)
                accel[free] = np.linalg.solve(damped, -2 * (df.T @ (weights * f_vv))[free])
                if not np.all(np.isfinite(accel)) or np.linalg.norm(accel[free] * scale) > MAX_BEND * length:
                    radius = 0.5 * length  # too curved for this step length
                    continue
            trial = np.clip(x + into_box(x, v + 0.5 * accel, low, high), low, high)
            f_trial = yield ("predict", trial)
            value_trial = objective_from(problem, trial, f_trial)
            if value_trial <= value + 1e-9:
                x, f = trial, f_trial
                x, value = sigma_given_predictions(problem, x, f, value_trial, held)
                break
            radius = 0.5 * length
        else:
            converged = _stationary(g, h)
            break  # no step improves: at the optimum within the objective's noise
        if length == 0.0:
            converged = True
            break
    return ScoringResult(x, value, hessian, gradient, iterations, converged, 0)


def sigma_given_predictions(
    problem: "IndividualProblem", x: np.ndarray, f: np.ndarray, value: float, held: np.ndarray
) -> tuple[np.ndarray, float]:
    """x with every one-parameter residual SD (additive or proportional) at its maximum-likelihood
    value given the predictions f — mean (y − f)² or mean ((y − f)/f)² over its group, no model run —
    and the objective there. A residual SD far from its optimum otherwise costs many scoring steps
    (its information is large, so its steps are short while the model parameters are off)."""
    z = np.array(x, dtype=float)
    start = problem.n_model
    r = problem.dv - f
    for group, model in problem.error.models.items():
        size = len(model.parameter_names)
        rows = problem.error.groups == group
        if size == 1 and not held[start] and rows.any():
            scaled = r[rows] if model.kind == "add" else r[rows] / f[rows]
            with np.errstate(all="ignore"):
                best = 0.5 * np.log(np.mean(scaled**2))
            if np.isfinite(best):
                z[start] = best
        start += size
    new_value = objective_from(problem, z, f)
    return (z, new_value) if new_value < value else (x, value)


def fisher_scoring_many(
    problems: "IndividualProblem | Sequence[IndividualProblem]",
    starts: Sequence[np.ndarray],
    *,
    held: np.ndarray | None = None,
    max_iterations: int = 100,
    decrement_tol: float = FIT_DECREMENT_TOL,
    between_rounds: Callable[[int], None] | None = None,
) -> list[ScoringResult]:
    """Independent scoring runs from ``starts`` in lockstep: each round, every run's trial point goes
    into one batched sensitivity run and every geodesic probe into one batched plain run. A batch
    costs little more than one of its sets (the solver's cost is per step, not per chip), so m
    runs cost about as much as the slowest one. ``problems``: one problem for every start, or one
    per start (e.g. chips fitted each alone: batched together when their ``predict_jacobian`` has
    a ``joint`` runner, as ``ChipsJacobian`` does). Needs ``predict_jacobian``.

    ``between_rounds(finished)`` is called before each round with the number of runs done (it may
    raise to stop). Each result's ``runs`` counts the batched runs its requests took part in."""
    each = [problems] * len(starts) if not isinstance(problems, Sequence) else list(problems)
    batch = _Batch(each)
    steps = [scoring_steps(problem, x0, held, max_iterations, decrement_tol) for problem, x0 in zip(each, starts)]
    results: list[ScoringResult | None] = [None] * len(steps)
    runs = np.zeros(len(steps), dtype=int)
    pending: dict[int, Request] = {}

    def advance(answers: dict[int, object]) -> None:
        """Send each run its answer; keep its next request for a model run, or its result."""
        for k, answer in answers.items():
            try:
                request = steps[k].send(answer)
                while request[0] == "jacobian":  # from the trial run's sensitivities: no new run
                    request = steps[k].send(batch.jacobian(k, request[1]))
                pending[k] = request
            except StopIteration as stop:
                results[k] = stop.value
                results[k].runs = int(runs[k])
                pending.pop(k, None)

    def run(kind: str) -> dict[int, object]:
        ks = [k for k, request in pending.items() if request[0] == kind]
        runs[ks] += 1
        return dict(zip(ks, batch.run(ks, [pending[k][1] for k in ks], jacobian=kind == "predict"))) if ks else {}

    advance(dict.fromkeys(range(len(steps))))
    while pending:
        if between_rounds is not None:
            between_rounds(sum(r is not None for r in results))
        # a round: the geodesic probes first (a run that answers them may ask for its trial point at
        # once), until every run waits for a trial point; then all trial points in one run
        while any(request[0] == "probe" for request in pending.values()):
            advance(run("probe"))
        advance(run("predict"))
    return [r for r in results if r is not None]


class _Batch:
    """The batched runs of ``fisher_scoring_many``: many parameter sets in one solve, the Jacobians kept
    per run; a failed batch (one bad set fails the whole solve) is retried set by set."""

    def __init__(self, problems: "list[IndividualProblem]") -> None:
        self.problems = problems
        self.jacobians: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def run(self, ks: list[int], xs: list[np.ndarray], jacobian: bool) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            out = self._solve(ks, xs, jacobian)
        fs = [o[0] if jacobian else o for o in out]
        if len(ks) > 1 and not any(np.all(np.isfinite(f)) for f in fs):
            half = len(ks) // 2  # find the bad set(s) by halves
            return self.run(ks[:half], xs[:half], jacobian) + self.run(ks[half:], xs[half:], jacobian)
        if jacobian:
            for k, x, (_, jac) in zip(ks, xs, out):
                self.jacobians[k] = (np.array(x, dtype=float), jac)
        return fs

    def _solve(self, ks: list[int], xs: list[np.ndarray], jacobian: bool) -> list:
        problems = [self.problems[k] for k in ks]
        sets = [problem.parameters(x) for problem, x in zip(problems, xs)]
        if all(problem is problems[0] for problem in problems):
            runner = problems[0].predict_jacobian
            plain = getattr(runner, "predict_sets", None)
            if jacobian or plain is None:
                out = runner(sets)
                return out if jacobian else [f for f, _ in out]
            return plain(sets)
        joint = getattr(problems[0].predict_jacobian, "joint", None)
        if joint is not None:
            return joint([(problem.predict_jacobian, values) for problem, values in zip(problems, sets)], jacobian)
        return [answer for k, x in zip(ks, xs) for answer in self._solve([k], [x], jacobian)]

    def jacobian(self, k: int, x: np.ndarray) -> np.ndarray:
        at, jac = self.jacobians[k]
        n = self.problems[k].n_model  # f and ∂f do not depend on the residual SDs
        if not np.array_equal(at[:n], x[:n]):  # not the last trial point (never, as scoring asks)
            self.run([k], [x], jacobian=True)
            jac = self.jacobians[k][1]
        return jac


def _stationary(g: np.ndarray, h: np.ndarray) -> bool:
    """No improving step was found: stationary when the decrement is within the objective's noise."""
    return bool(0.5 * g @ np.linalg.lstsq(h, g, rcond=None)[0] < 1e-3)


def levenberg(h: np.ndarray, g: np.ndarray, scale: np.ndarray, radius: float) -> float:
    """λ whose step −(H + λ·diag(scale²))⁻¹g has scaled length ``radius`` (0 if the scoring step is shorter)."""
    mu, q = np.linalg.eigh(h / np.outer(scale, scale))
    c = q.T @ (g / scale)

    def length(lam: float) -> float:
        return float(np.sqrt(np.sum((c / (mu + lam)) ** 2)))

    if mu[0] > 0 and length(0.0) <= radius:
        return 0.0
    low, high = max(-mu[0], 0.0), max(1.0, 2 * abs(mu[0]))
    for _ in range(60):  # bounded: radius > 0 is reached long before λ overflows
        if length(high) <= radius:
            break
        high *= 10
    for _ in range(50):  # bisection on log λ: the length falls monotonically with λ
        mid = np.sqrt(low * high) if low > 0 else high / 2
        low, high = (mid, high) if length(mid) > radius else (low, mid)
    return high


def into_box(x: np.ndarray, step: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The step shortened to end inside the bounds (after dropping what presses on a bound already
    reached): clipping instead would leave a long step along the bound that never shrinks."""
    step = np.where(((x <= low + 1e-9) & (step < 0)) | ((x >= high - 1e-9) & (step > 0)), 0.0, step)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(step < 0, (low - x) / step, np.where(step > 0, (high - x) / step, np.inf))
    return step * min(1.0, float(room.min()))
