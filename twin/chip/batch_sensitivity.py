"""Many chips at once, with forward sensitivities: Rodas4 on the augmented system, batched.

For the log-parameters q = log p_free the state sensitivities S = ∂x/∂q solve
S' = J(x)·S + (∂f/∂p)·diag(p), so (x, S) is one ODE; this module integrates it with the
same Rodas4 (``twin.chip.batch``) that simulates many chips, each chip with its own step
size, its own events and its own output times, so one solve gives every chip's
predictions and their Jacobian — what a Gauss–Newton fit needs per iteration.

The augmented Jacobian is block lower-triangular, [[J, 0], [B, I⊗J]] with
B_k = ∂(J·s_k + F_k)/∂x, so every stage's linear solve needs only the chip's S×S matrix
(I/(hγ) − J)⁻¹ — the "staggered" solve of CVODES — plus B·k_x, a directional derivative
taken by one real difference of J·S + F along k_x. That difference only enters the
Newton-like matrix of the method (its error is O(1e-7) in the matrix, not in the
right-hand side), so the sensitivities are those of the augmented ODE to the
integrator's tolerance, which controls the sensitivities too (as CVODES' errconS).

Events have parameter-free times and sizes; they map S by ``twin.chip.events.sensitivity_jump``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from twin.chip.batch import FAC_MAX, FAC_MIN, FIRST_STEP_H, GAMMA, SAFETY, A, C, M
from twin.chip.events import Event, Sample, event_jump, sensitivity_jump
from twin.chip.solve import Tolerances
from twin.chip.system import ChipSystem
from twin.errors import InvalidValueError

_COMPLEX_STEP = 1e-30  # far below rounding: Im f(x + i·h·v)/h is J·v to machine precision
_DIRECTIONAL_STEP = 1e-7  # relative size of the difference that gives B·k_x
TINY_STEP_H = 1e-7  # steps this short (an observation a hair before an event) are explicit Euler:
#   the local error, O(h²·|x''|), is far below rounding, at a seventh of a Rodas step's cost


def _complex_safe(system: ChipSystem, p: np.ndarray, c: np.ndarray) -> bool:
    """Whether the right-hand side carries a complex step (numpy formulas do; a float-only one would not)."""
    x = system.initial(p, c).astype(complex)
    x[0, 0] += 1j * _COMPLEX_STEP
    try:
        out = system.rhs(x, p.astype(complex), c)
    except (TypeError, ValueError):
        return False
    return np.iscomplexobj(out) and bool(np.allclose(out.imag / _COMPLEX_STEP, system.jac(x.real, p, c)[:, :, 0]))


class _Augmented:
    """The model's f, J and ∂f/∂p_free·p_free at many points in one call, and the staggered stage solve."""

    def __init__(self, system: ChipSystem, p: np.ndarray, c: np.ndarray, free: np.ndarray) -> None:
        self.system, self.p, self.c, self.free = system, p, c, free
        self.p_free = p[:, free]
        self._cache: dict[tuple[bytes, int], tuple[np.ndarray, np.ndarray]] = {}
        self.complex_safe = free.size > 0 and _complex_safe(system, p[:1], c[:1])

    def pieces(
        self, y: np.ndarray, ys: np.ndarray, chips: np.ndarray, complex_parameters: tuple | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """f(y) and J(y)·ys + ∂f/∂p_free·p_free, by complex steps of the right-hand side alone.

        Column k is Im f(y + i·h·ys_k, p + i·h·p_k·e_k)/h: exact to rounding (no difference is
        taken), and one batched call of f on n·P rows replaces the calls of f, J and ∂f/∂p.
        ``complex_parameters``: ``self.complex_parameters(chips)``, when the caller has them.
        """
        if not self.complex_safe:
            f, jac, fp = self.evaluate(y, chips)
            return f, _apply(jac, ys) + fp
        n, n_s, n_p = ys.shape
        z = y[:, None, :] + 1j * _COMPLEX_STEP * np.swapaxes(ys, 1, 2)  # (n, P, S)
        pz, cz = complex_parameters or self.complex_parameters(chips)
        out = self.system.rhs(z.reshape(n * n_p, n_s), pz, cz).reshape(n, n_p, n_s)
        return out[:, 0, :].real.copy(), np.swapaxes(out.imag, 1, 2) / _COMPLEX_STEP

    def complex_parameters(self, chips: np.ndarray, repeat: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Parameters with the complex step on p_k in row k of each of ``chips`` (each chip's rows
        repeated ``repeat`` times), and constants; cached per chip set (it changes only as chips finish)."""
        key = (chips.tobytes(), repeat)
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) > 16:
                self._cache.clear()
            n, n_p = len(chips), self.free.size
            pz = np.repeat(self.p[chips][:, None, :].astype(complex), n_p, axis=1)
            pz[:, np.arange(n_p), self.free] += 1j * _COMPLEX_STEP * self.p_free[chips]
            cz = np.repeat(self.c[chips][:, None, :], n_p, axis=1)
            cached = (
                np.repeat(pz, repeat, axis=0).reshape(n * repeat * n_p, -1),
                np.repeat(cz, repeat, axis=0).reshape(n * repeat * n_p, -1),
            )
            self._cache[key] = cached
        return cached

    def directional_matrix(
        self, x: np.ndarray, s: np.ndarray, chips: np.ndarray, base: np.ndarray, complex_parameters: tuple | None
    ) -> np.ndarray:
        """B (n, S·P, S) with B·v = ∂(J·S + F)/∂x · v at (x, S): one real difference per state direction,
        all in one batched call (``base`` = J·S + F at x). B enters only the method's Newton-like matrix."""
        n, n_s, n_p = s.shape
        eps = _DIRECTIONAL_STEP * (1.0 + np.linalg.norm(x, axis=1))  # (n,)
        shifted = (x[:, None, :] + eps[:, None, None] * np.eye(n_s)[None]).reshape(n * n_s, n_s)
        repeated = np.repeat(chips, n_s)
        if complex_parameters is not None:
            complex_parameters = self.complex_parameters(chips, n_s)
        moved = self.pieces(shifted, np.repeat(s, n_s, axis=0), repeated, complex_parameters)[1]
        moved = moved.reshape(n, n_s, n_s * n_p)  # (chip, direction j, row of J·S + F)
        return np.swapaxes(moved - base.reshape(n, 1, n_s * n_p), 1, 2) / eps[:, None, None]

    def evaluate(self, y: np.ndarray, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(f, J, F) at states ``y`` of ``chips`` (rows may repeat a chip): F = ∂f/∂p_free · p_free."""
        p, c = self.p[chips], self.c[chips]
        f, jac = self.system.rhs(y, p, c), self.system.jac(y, p, c)
        return f, jac, self.system.dfdp(y, p, c)[:, :, self.free] * self.p_free[chips][:, None, :]

    def starting_step(self, x: np.ndarray, chips: np.ndarray, tol: Tolerances) -> np.ndarray:
        """Hairer & Wanner's first-step guess, 0.01·‖x‖/‖f(x)‖ in the error norm's scale."""
        f = self.system.rhs(x, self.p[chips], self.c[chips])
        scale = tol.atol + tol.rtol * np.abs(x)
        d0 = np.sqrt(np.mean((x / scale) ** 2, axis=1))
        d1 = np.sqrt(np.mean((f / scale) ** 2, axis=1))
        guess = np.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / np.where(d1 > 0, d1, 1.0), 1e-6)
        return np.clip(guess, 1e-6, FIRST_STEP_H * 1e3)


def _apply(jac: np.ndarray, s: np.ndarray) -> np.ndarray:
    return jac @ s  # (n, S, S) @ (n, S, P)


def rodas4_sensitivity_step(
    aug: _Augmented, x: np.ndarray, s: np.ndarray, chips: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One Rodas4 step of (x, S) for the chips ``chips``; returns (x_new, S_new, err_x, err_S).

    B is formed once per step at its start (one batched call for all state directions) and applied
    to each stage's k_x by a product; the stages are stacked so their combinations are products too.
    """
    n, n_s = x.shape
    n_p = s.shape[2]
    w_inv = np.linalg.inv(
        np.eye(n_s)[None] / (GAMMA * h)[:, None, None] - aug.system.jac(x, aug.p[chips], aug.c[chips])
    )
    cp = aug.complex_parameters(chips) if aug.complex_safe else None
    f0, base = aug.pieces(x, s, chips, cp)  # f and S' at the step's start
    b = aug.directional_matrix(x, s, chips, base, cp)
    kx, ks = np.empty((6, n, n_s)), np.empty((6, n, n_s, n_p))
    flat_x, flat_s = kx.reshape(6, -1), ks.reshape(6, -1)
    over_h = 1.0 / h
    for i in range(6):
        if i:
            y = x + (A[i, :i] @ flat_x[:i]).reshape(n, n_s)
            ys = s + (A[i, :i] @ flat_s[:i]).reshape(n, n_s, n_p)
            rx, rs = aug.pieces(y, ys, chips, cp)
            rx += (C[i, :i] @ flat_x[:i]).reshape(n, n_s) * over_h[:, None]
            rs += (C[i, :i] @ flat_s[:i]).reshape(n, n_s, n_p) * over_h[:, None, None]
        else:
            rx, rs = f0, base
        kx[i] = (w_inv @ rx[:, :, None])[:, :, 0]
        directional = (b @ kx[i][:, :, None]).reshape(n, n_s, n_p)  # B·k_x
        ks[i] = w_inv @ (rs + directional)
    x_new = x + (M @ flat_x).reshape(n, n_s)
    s_new = s + (M @ flat_s).reshape(n, n_s, n_p)
    return x_new, s_new, kx[5], ks[5]


def _error_norm(x, x_new, err, s, s_new, err_s, tol: Tolerances) -> np.ndarray:
    scale = tol.atol + tol.rtol * np.maximum(np.abs(x), np.abs(x_new))
    scale_s = tol.atol + tol.rtol * np.maximum(np.abs(s), np.abs(s_new))
    total = np.sum((err / scale) ** 2, axis=1) + np.sum((err_s / scale_s) ** 2, axis=(1, 2))
    return np.sqrt(total / (x.shape[1] * (1 + s.shape[2])))


class _Schedule:
    """Per chip: its events and its own output times (padded with inf), with pointers into both."""

    def __init__(self, schedules: Sequence[Sequence[Event]], times_h: Sequence[np.ndarray]) -> None:
        n = len(schedules)
        self.n_times = np.array([len(t) for t in times_h])
        self.times = np.full((n, max(self.n_times.max(initial=0), 0) + 1), np.inf)
        for i, t in enumerate(times_h):
            self.times[i, : len(t)] = t
        t_end = np.array([t[-1] if len(t) else 0.0 for t in times_h])
        self.events = [[e for e in sched if e.time_h <= t_end[i]] for i, sched in enumerate(schedules)]
        self.event_times = np.full((n, max((len(e) for e in self.events), default=0) + 1), np.inf)
        for i, sched in enumerate(self.events):
            self.event_times[i, : len(sched)] = [e.time_h for e in sched]
        self.next_event = np.zeros(n, dtype=int)
        self.next_out = np.zeros(n, dtype=int)

    def target(self, chips: np.ndarray) -> np.ndarray:
        return np.minimum(self.times[chips, self.next_out[chips]], self.event_times[chips, self.next_event[chips]])

    def apply_due(self, system: ChipSystem, chips, t, x, s) -> np.ndarray:
        """Apply the events due at ``t``; True where one of them was not a sample. A sample scales the
        medium's solutes in proportion, so the solution stays as smooth as before and the step size
        carries on; a dose or a media change starts a new transient."""
        hit = self.event_times[chips, self.next_event[chips]] == t
        jolted = np.zeros(len(chips), dtype=bool)
        for k in np.flatnonzero(hit):
            i = chips[k]
            while self.next_event[i] < len(self.events[i]) and self.events[i][self.next_event[i]].time_h == t[k]:
                event = self.events[i][self.next_event[i]]
                s[k] = sensitivity_jump(s[k], x[k], event, system)
                x[k] = event_jump(x[k], event, system)[0]
                jolted[k] |= not isinstance(event, Sample)
                self.next_event[i] += 1
        return jolted

    def record(self, chips, t, x, s, out_x, out_s) -> None:
        while True:
            due = self.times[chips, self.next_out[chips]] == t
            if not due.any():
                return
            for k in np.flatnonzero(due):
                i = chips[k]
                out_x[i][self.next_out[i]], out_s[i][self.next_out[i]] = x[k], s[k]
            self.next_out[chips[due]] += 1


class _Lockstep:
    """Step sizes and error norms shared within groups of chips (``solve_batch_sensitivities``)."""

    def __init__(self, labels: Sequence[int] | None, n: int, book: _Schedule) -> None:
        self.group: np.ndarray | None = None
        if labels is None:
            return
        group = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(n)
        for g in range(group.max(initial=-1) + 1):
            members = np.flatnonzero(group == g)
            first = members[0]
            same = all(
                np.array_equal(book.times[i], book.times[first])
                and np.array_equal(book.event_times[i], book.event_times[first])
                for i in members[1:]
            )
            if not same:
                raise InvalidValueError("chips stepped in lockstep must share their event and output times")
        self.group = group

    def shortest(self, chips: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Each chip's h replaced by the smallest in its group (among ``chips``)."""
        return self._reduce(chips, h, np.minimum, np.inf)

    def largest(self, chips: np.ndarray, norm: np.ndarray) -> np.ndarray:
        """Each chip's error norm replaced by the largest in its group (nan, a failed step, wins)."""
        return self._reduce(chips, np.where(np.isnan(norm), np.inf, norm), np.maximum, -np.inf)

    def _reduce(self, chips: np.ndarray, values: np.ndarray, ufunc: np.ufunc, identity: float) -> np.ndarray:
        if self.group is None:
            return values
        labels = self.group[chips]
        out = np.full(self.group.max() + 1, identity)
        ufunc.at(out, labels, values)
        return out[labels]


def solve_batch_sensitivities(
    system: ChipSystem,
    p: np.ndarray,
    c: np.ndarray,
    free: Sequence[int],
    schedules: Sequence[Sequence[Event]],
    times_h: Sequence[np.ndarray],
    tol: Tolerances = Tolerances(1e-7, 1e-10),
    lockstep: Sequence[int] | None = None,
    control_sensitivities: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """States (T_i, S) and ∂x/∂log p_free (T_i, S, P) of n chips, each at its own sorted times.

    ``p`` (n, n_params) and ``c`` (n, n_constants) in spec order; ``free`` indexes the
    parameters to differentiate by; schedules already validated. ``lockstep``: a group label per
    chip; chips of one group (copies of one chip at nearby parameters, with the same schedule and
    times) take the same steps — each the shortest any member asks for, rejected if any member's
    is — so the integration error is one smooth function of the parameters and differences
    across the group (a covariance step's) are free of step-size jitter.
    """
    free = np.asarray(free, dtype=int)
    n = p.shape[0]
    times_h = [np.asarray(t, dtype=float) for t in times_h]
    book = _Schedule(schedules, times_h)
    group = _Lockstep(lockstep, n, book)
    aug = _Augmented(system, p, c, free)
    x = system.initial(p, c).astype(float)
    s = system.dinitial_dp(p, c)[:, :, free] * p[:, None, free]
    out_x = [np.empty((len(t), system.n_states)) for t in times_h]
    out_s = [np.empty((len(t), system.n_states, free.size)) for t in times_h]
    chips, t = np.arange(n), np.zeros(n)
    book.apply_due(system, chips, t, x, s)
    book.record(chips, t, x, s, out_x, out_s)
    h = group.shortest(chips, aug.starting_step(x, chips, tol))
    while True:
        live = book.next_out[chips] < book.n_times[chips]
        chips, t, x, s, h = chips[live], t[live], x[live], s[live], h[live]
        if chips.size == 0:
            return out_x, out_s
        t_target = book.target(chips)
        lands = h >= t_target - t
        step = np.where(lands, t_target - t, h)
        tiny = lands & (step <= TINY_STEP_H)
        x_new, s_new, norm = x.copy(), s.copy(), np.zeros(len(chips))
        if tiny.any():
            f, jac, fp = aug.evaluate(x[tiny], chips[tiny])
            x_new[tiny] = x[tiny] + step[tiny, None] * f
            s_new[tiny] = s[tiny] + step[tiny, None, None] * (_apply(jac, s[tiny]) + fp)
        rest = ~tiny
        if rest.any():
            xr, sr, err, err_s = rodas4_sensitivity_step(aug, x[rest], s[rest], chips[rest], step[rest])
            x_new[rest], s_new[rest] = xr, sr
            if control_sensitivities:
                norm[rest] = _error_norm(x[rest], xr, err, s[rest], sr, err_s, tol)
            else:
                norm[rest] = _error_norm(x[rest], xr, err, s[rest, :, :0], sr[:, :, :0], err_s[:, :, :0], tol)
        norm = group.largest(chips, norm)
        ok = np.isfinite(norm) & (norm <= 1.0)
        factor = SAFETY * np.where(norm > 0, norm, 1e-10) ** -0.25
        factor = np.where(np.isfinite(factor), factor, FAC_MIN)
        h_next = step * np.clip(factor, FAC_MIN, np.where(ok, FAC_MAX, 1.0))
        # a step cut short to land says little about the next one (nor does an Euler micro-step)
        h = np.where(tiny, h, np.where(ok & lands, np.maximum(h_next, h), h_next))
        if np.any(h < 1e-12 * np.maximum(1.0, t)):
            raise InvalidValueError(
                "the batched sensitivity integrator's step size underflowed; "
                "check the parameters are in a plausible range"
            )
        t = np.where(ok, np.where(lands, t_target, t + step), t)
        x[ok], s[ok] = x_new[ok], s_new[ok]
        landed = np.flatnonzero(ok & lands)
        if landed.size:
            xl, sl = x[landed], s[landed]
            hit = book.apply_due(system, chips[landed], t[landed], xl, sl)
            x[landed], s[landed] = xl, sl
            if hit.any():  # after a dose or a media change, a step suited to the new state
                jumped = landed[hit]
                h[jumped] = np.minimum(h[jumped], aug.starting_step(x[jumped], chips[jumped], tol))
                h = group.shortest(chips, h)
            book.record(chips[landed], t[landed], x[landed], s[landed], out_x, out_s)


def observe_sensitivities(
    system: ChipSystem, p: np.ndarray, c: np.ndarray, states: np.ndarray, dstates: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One chip's observables (T,) and their ∂/∂log p_free (T, P) from states and ∂x/∂log p_free."""
    n_times = states.shape[0]
    pp, cc = np.repeat(p[None], n_times, 0), np.repeat(c[None], n_times, 0)
    values = system.observe(states, pp, cc)
    grads = system.dobs_dx(states, pp, cc)
    return values, {name: np.einsum("ts,tsp->tp", grads[name], dstates) for name in values}
