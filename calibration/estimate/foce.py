"""``Foce``: the FOCE-I objective with its analytic outer gradient (issue #11).

The bookkeeping between the modes of ``calibration.estimate.foce_objective`` and the formulas of
``calibration.estimate.foce_gradient``: the predictions' derivatives in u = (η, log θ) at the
current modes (reusing those the inner solve computed), the gradient per subject and in all,
and Fisher scoring's expected Hessian.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from calibration.estimate.foce_gradient import chain, expected_hessian, foce_gradient, individual_derivatives
from calibration.estimate.foce_objective import FoceObjective
from calibration.estimate.population_model import dvariance_df


class Foce(FoceObjective):
    """The FOCE-I objective for one model and dataset, with its analytic gradient; keeps the last modes."""

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """The analytic dOFV/dx (``calibration.estimate.foce_gradient``) at the modes of ``x`` (solved if not yet)."""
        return self.gradient_by_subject(x).sum(axis=0)

    def gradient_by_subject(self, x: np.ndarray) -> np.ndarray:
        """Each subject's share of the analytic gradient, (n_subjects, n_x)."""
        x = np.asarray(x, dtype=float)
        if self._eta_x is None or not np.array_equal(x, self._eta_x):
            if not np.isfinite(self.ofv(x)):
                return np.zeros((len(self.data.ids), x.size))  # rejected by its value; never used
        theta, omega, sigma = self.unpack(x)
        with np.errstate(all="ignore"):
            f, fu, fuu = self._outer_derivatives(theta)
            by_subject = foce_gradient(
                self.data.dv,
                self.data.mask,
                self.eta,
                np.diag(omega),
                sigma,
                f,
                fu,
                fuu,
                self.model.error.variance,
                partial(dvariance_df, self.model.error),
            )
        self.gradients += 1
        return by_subject

    def _outer_derivatives(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """f, ∂f/∂u and ∂²f/∂u² at the current modes, u = (η, log θ)."""
        psi, d1, d2 = individual_derivatives(self.model.individual, theta, self.eta)
        known = self._psi_cache
        if known is not None and np.allclose(known[0], psi, rtol=0.0, atol=1e-12):  # the inner solve's last
            f, jac, hess = known[1:]
        else:
            f, jac, hess = self._psi_derivatives(psi)
        fu, fuu = chain(jac, hess, d1, d2)
        return f, fu, fuu

    def expected_hessian(self, x: np.ndarray) -> np.ndarray:
        """Fisher scoring's approximation of the OFV's Hessian at ``x`` (``foce_gradient.expected_hessian``)."""
        x = np.asarray(x, dtype=float)
        if self._eta_x is None or not np.array_equal(x, self._eta_x):
            self.ofv(x)
        theta, omega, sigma = self.unpack(x)
        with np.errstate(all="ignore"):
            f, fu, _ = self._outer_derivatives(theta)
            return expected_hessian(
                self.data.mask,
                np.diag(omega),
                sigma,
                f,
                fu,
                self.model.error.variance,
                partial(dvariance_df, self.model.error),
            )
