"""The analytic outer gradient of the FOCE-I objective (issue #11), through the implicit function theorem.

Per subject, with L(η, x) = Σ_j ℓ_j + ηᵀΩ⁻¹η, ℓ_j = log V_j + (y_j − f_j)²/V_j, and
A = Ω⁻¹ + Σ_j w_j g_j g_jᵀ, w_j = 1/V_j + ½ (V'_j/V_j)² (the expected information of
``calibration.estimate.population``; V' = ∂V/∂f), the objective is OFV_i = L(η̂) + log|Ω| + log|A(η̂)|
at the conditional mode η̂(x), x = (log θ, log ω², log σ). Its total derivative is

    dOFV_i/dx = ∂(L + log|Ω| + log|A|)/∂x + (∂L/∂η + ∂log|A|/∂η) · dη̂/dx,
    dη̂/dx = −(∂²L/∂η²)⁻¹ ∂²L/∂η∂x                        (implicit function theorem),

with ∂log|A|/∂z = tr(A⁻¹ ∂A/∂z) (Almquist et al. 2015; the nlmixr2est FOCEi gradient).
∂L/∂η vanishes at an exact mode; it is kept, so the formula is the derivative of the
objective along the modes actually used. What it needs of the model are the predictions'
first and second derivatives in (η, log θ): f_η, f_θ, f_ηη and f_ηθ (no third derivatives).

Those come through the individual parameters ψ = log φ (two or three per subject): the
Jacobian and Hessian of the predictions in ψ in closed form where the twin has them
(``twin.pk.fast.Superposition.predict_derivatives``: one-compartment models), else by central
differences of a predictor exact to rounding (``predictor_derivatives``: 2r + 2r(r − 1) + 1
calls for r individual parameters, all subjects at once, accurate to ~1e-8) — and the chain
rule through φ(θ, η), whose own derivatives are differences of the (algebraic) ``individual``
function. The error model's
derivatives in f are closed forms in V, V' and V'' (V'' a difference of V', exact for the
catalogue's add/prop/comb models); those in log σ are differences of the elementwise terms.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

PSI_STEP = 1e-4  # log units, for the predictor's differences (rounding ~1e-16/h² = 1e-8)
U_STEP = 1e-4  # (η, log θ) units, for the individual function's differences
SIGMA_STEP = 1e-5  # log σ, elementwise error-model terms


def individual_derivatives(
    individual: Callable[[np.ndarray, np.ndarray], np.ndarray],
    theta: np.ndarray,
    eta: np.ndarray,
    eta_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """ψ = log φ and its first and second derivatives in u = (η, log θ): (n, r), (n, r, k), (n, r, k, k).

    ``eta_only``: u = η (the inner problem's derivatives). An ``individual`` with a ``derivatives``
    method (``LognormalIndividual``) gives them exactly: then (r, k) shared by all subjects, and None
    for the second derivatives (zero).
    """
    n, q = eta.shape
    k = q if eta_only else q + theta.size
    exact = getattr(individual, "derivatives", None)
    if exact is not None:  # ψ linear in u (the log-normal model): constant derivatives, no differences
        first_shared, second_shared = exact(eta_only)
        return np.log(individual(theta, eta)), first_shared, second_shared

    def psi(u: np.ndarray) -> np.ndarray:
        return np.log(individual(theta * np.exp(u[q:]) if k > q else theta, eta + u[:q]))

    zero = np.zeros(k)
    center = psi(zero)
    r = center.shape[1]
    first = np.zeros((n, r, k))
    second = np.zeros((n, r, k, k))
    h = U_STEP
    plus, minus = [], []
    for a in range(k):
        e = np.zeros(k)
        e[a] = h
        plus.append(psi(e))
        minus.append(psi(-e))
        first[:, :, a] = (plus[a] - minus[a]) / (2 * h)
        second[:, :, a, a] = (plus[a] - 2 * center + minus[a]) / h**2
    for a in range(k):
        for b in range(a):
            ea, eb = np.zeros(k), np.zeros(k)
            ea[a], eb[b] = h, h
            value = (psi(ea + eb) - psi(ea - eb) - psi(-ea + eb) + psi(-ea - eb)) / (4 * h * h)
            second[:, :, a, b] = second[:, :, b, a] = value
    # the lognormal model's ψ is linear in u: exact zeros rather than rounding noise
    second[np.abs(second) < 1e-6] = 0.0
    return center, first, second


def predictor_derivatives(
    predict_psi: Callable[[np.ndarray], np.ndarray], psi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f, ∂f/∂ψ (n, m, r) and ∂²f/∂ψ² (n, m, r, r) by central differences, all subjects at once."""
    r = psi.shape[1]
    h = PSI_STEP
    f = predict_psi(psi)
    jac = np.zeros((*f.shape, r))
    hess = np.zeros((*f.shape, r, r))
    steps = np.eye(r) * h
    for a in range(r):
        up, down = predict_psi(psi + steps[a]), predict_psi(psi - steps[a])
        jac[..., a] = (up - down) / (2 * h)
        hess[..., a, a] = (up - 2 * f + down) / h**2
    for a in range(r):
        for b in range(a):
            value = (
                predict_psi(psi + steps[a] + steps[b])
                - predict_psi(psi + steps[a] - steps[b])
                - predict_psi(psi - steps[a] + steps[b])
                + predict_psi(psi - steps[a] - steps[b])
            ) / (4 * h * h)
            hess[..., a, b] = hess[..., b, a] = value
    return f, jac, hess


def chain(jac: np.ndarray, hess: np.ndarray, d1: np.ndarray, d2: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """∂f/∂u (n, m, k) and ∂²f/∂u² (n, m, k, k) from f's ψ-derivatives and ψ's u-derivatives
    (``d1`` (r, k) and ``d2`` None: ψ linear in u, the same for every subject)."""
    if d1.ndim == 2 and d2 is None:
        return jac @ d1, d1.T @ hess @ d1
    fu = np.einsum("nmr,nrk->nmk", jac, d1)
    fuu = np.einsum("nmrs,nrk,nsl->nmkl", hess, d1, d1) + np.einsum("nmr,nrkl->nmkl", jac, d2)
    return fu, fuu


def sigma_differences(values: Callable[[np.ndarray], np.ndarray], sigma: np.ndarray) -> np.ndarray:
    """∂values/∂log σ_k by central differences (step ``SIGMA_STEP``), the k on a new last axis."""
    if not sigma.size:
        return np.zeros((*np.shape(values(sigma)), 0))
    up, down = np.exp(SIGMA_STEP * np.eye(sigma.size)), np.exp(-SIGMA_STEP * np.eye(sigma.size))
    differences = [(values(sigma * u) - values(sigma * d)) / (2 * SIGMA_STEP) for u, d in zip(up, down)]
    return np.stack(differences, axis=-1)


def masked_variances(
    mask: np.ndarray,
    f: np.ndarray,
    sigma: np.ndarray,
    variance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    dvariance: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """V and V' = ∂V/∂f per observation; on padding V = 1 (the floor's V² underflows) and V' = 0."""
    return np.where(mask, variance(f, sigma), 1.0), np.where(mask, dvariance(f, sigma), 0.0)


def loss_derivatives(
    y: np.ndarray,
    mask: np.ndarray,
    f: np.ndarray,
    sigma: np.ndarray,
    variance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    dvariance: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, ...]:
    """Per observation: ∂ℓ/∂f, ∂²ℓ/∂f², the information weight w and ∂w/∂f (zero on padding)."""
    on = mask.astype(float)
    v, dv = masked_variances(mask, f, sigma, variance, dvariance)
    step = 1e-6 * np.maximum(np.abs(f), 1e-12)
    ddv = np.where(mask, (dvariance(f + step, sigma) - dvariance(f - step, sigma)) / (2 * step), 0.0)
    res = y - f
    a = on * (dv / v - 2 * res / v - res**2 * dv / v**2)
    b = on * (ddv / v - dv**2 / v**2 + 2 / v + 4 * res * dv / v**2 - res**2 * ddv / v**2 + 2 * res**2 * dv**2 / v**3)
    w = on / v + 0.5 * on * (dv / v) ** 2
    dw = on * (-dv / v**2 + (dv / v) * (ddv / v - dv**2 / v**2))
    return a, b, w, dw


def foce_gradient(
    y: np.ndarray,
    mask: np.ndarray,
    eta: np.ndarray,
    omega_variances: np.ndarray,
    sigma: np.ndarray,
    f: np.ndarray,
    fu: np.ndarray,
    fuu: np.ndarray,
    variance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    dvariance: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """dOFV/dx per subject, (n, p + q + s), x = (log θ, log ω², log σ); u = (η, log θ) as in ``chain``."""
    n, q = eta.shape
    k = fu.shape[-1]
    p = k - q
    n_sigma = sigma.size
    on = mask.astype(float)
    g, ft = fu[..., :q], fu[..., q:]
    gee, get = fuu[..., :q, :q], fuu[..., :q, q:]

    a, b, w, dw = loss_derivatives(y, mask, f, sigma, variance, dvariance)
    res = y - f

    # log σ: differences of the elementwise terms ℓ, ∂ℓ/∂f, w
    def terms(s: np.ndarray) -> np.ndarray:
        vs, dvs = masked_variances(mask, f, s, variance, dvariance)
        ell = np.log(vs) + res**2 / vs
        return np.stack(
            (on * ell, on * (dvs / vs - 2 * res / vs - res**2 * dvs / vs**2), on / vs + 0.5 * on * (dvs / vs) ** 2)
        )

    dell_s, da_s, dw_s = sigma_differences(terms, sigma)

    omega_inv = 1.0 / omega_variances
    # inner gradient and exact Hessian of L in η
    s_eta = np.einsum("nm,nmi->ni", a, g) + 2 * eta * omega_inv
    h_eta = np.einsum("nm,nmi,nmj->nij", b, g, g) + np.einsum("nm,nmij->nij", a, gee) + 2 * np.diag(omega_inv)[None]
    # mixed second derivatives ∂²L/∂η∂x: (n, q, p + q + s)
    mixed = np.zeros((n, q, p + q + n_sigma))
    mixed[:, :, :p] = np.einsum("nm,nmi,nmt->nit", b, g, ft) + np.einsum("nm,nmit->nit", a, get)
    mixed[:, np.arange(q), p + np.arange(q)] = -2 * eta * omega_inv
    mixed[:, :, p + q :] = np.einsum("nml,nmi->nil", da_s, g)
    deta = -np.linalg.solve(h_eta, mixed)  # dη̂/dx: (n, q, n_x)

    # log|A| and its partial derivatives
    info = np.diag(omega_inv)[None] + np.einsum("nm,nmi,nmj->nij", w, g, g)
    inv = np.linalg.inv(info)
    bg = np.einsum("nij,nmj->nmi", inv, g)  # A⁻¹ g_j
    quad = np.einsum("nmi,nmi->nm", g, bg)  # g_jᵀ A⁻¹ g_j
    dlogdet_eta = np.einsum("nm,nmc,nm->nc", dw, g, quad) + 2 * np.einsum("nm,nmi,nmic->nc", w, bg, gee)
    dlogdet_theta = np.einsum("nm,nmt,nm->nt", dw, ft, quad) + 2 * np.einsum("nm,nmi,nmit->nt", w, bg, get)
    dlogdet_omega = -np.einsum("nkk->nk", inv) * omega_inv
    dlogdet_sigma = np.einsum("nml,nm->nl", dw_s, quad)

    partial = np.zeros((n, p + q + n_sigma))
    partial[:, :p] = np.einsum("nm,nmt->nt", a, ft) + dlogdet_theta
    partial[:, p : p + q] = -(eta**2) * omega_inv + 1.0 + dlogdet_omega
    partial[:, p + q :] = dell_s.sum(axis=1) + dlogdet_sigma
    return partial + np.einsum("ni,nix->nx", s_eta + dlogdet_eta, deta)


def expected_hessian(
    mask: np.ndarray,
    omega_variances: np.ndarray,
    sigma: np.ndarray,
    f: np.ndarray,
    fu: np.ndarray,
    variance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    dvariance: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """2 × the expected information of the linearised FOCE model, an approximation of the OFV's
    Hessian in x = (log θ, log ω², log σ) from first derivatives only.

    At the modes, y_i ≈ N(μ_i, C_i) with C_i = G_i Ω G_iᵀ + diag(V_i) and ∂μ_i/∂log θ = f_θ, so
    I_ab = Σ_i ∂_aμᵀ C⁻¹ ∂_bμ + ½ tr(C⁻¹ ∂_aC C⁻¹ ∂_bC), with ∂C/∂log ω²_k = ω²_k g_k g_kᵀ,
    ∂C/∂log σ = diag(∂V/∂log σ) and, through the interaction, ∂C/∂log θ = diag(V' f_θ). Fisher
    scoring's matrix: a start for quasi-Newton methods, not a covariance step.
    """
    n, m = mask.shape
    q = omega_variances.size
    g, ft = fu[..., :q], fu[..., q:]
    p = ft.shape[-1]
    v, dv = masked_variances(mask, f, sigma, variance, dvariance)
    dv_sigma = np.where(mask[..., None], sigma_differences(lambda s: variance(f, s), sigma), 0.0)
    c = np.einsum("nmi,i,nli->nml", g, omega_variances, g)
    c[:, np.arange(m), np.arange(m)] += v
    c_inv = np.linalg.inv(c)
    n_x = p + q + sigma.size
    dc = np.zeros((n, n_x, m, m))
    diagonal = np.arange(m)
    dc[:, :p, diagonal, diagonal] = np.moveaxis(dv[..., None] * ft, -1, 1)
    dc[:, p : p + q] = np.einsum("nmk,k,nlk->nkml", g, omega_variances, g)
    dc[:, p + q :, diagonal, diagonal] = np.moveaxis(dv_sigma, -1, 1)
    products = c_inv[:, None] @ dc
    information = 0.5 * np.einsum("nakl,nblk->ab", products, products)
    information[:p, :p] += np.einsum("nmt,nml,nlu->tu", ft, c_inv, ft)
    return 2 * information
