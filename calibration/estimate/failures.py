"""A fit that fails numerically ends in ``FitFailedError`` (one line for a user), not numpy's own error.

A singular matrix or a floating-point trap deep inside an estimator (FOCE-I's inner problem, a
Hessian at far-off starting values) means the start is far from the data or the parameters cannot
be told apart; the message says so and what to try.
"""

from __future__ import annotations

import functools
from typing import Callable, ParamSpec, TypeVar

import numpy as np

from calibration.errors import FitFailedError

TRY_INSTEAD = (
    "give starting values near the data (--init NAME=VALUE, e.g. from a pooled fit) "
    "or estimate fewer parameters (--fix NAME=VALUE)"
)
P = ParamSpec("P")
R = TypeVar("R")


def numerical_failures(fit: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fit)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fit(*args, **kwargs)
        except (np.linalg.LinAlgError, FloatingPointError) as exc:
            raise FitFailedError(
                f"the fit failed numerically ({exc}): the starting values are far from the "
                f"data or the parameters cannot be told apart; {TRY_INSTEAD}"
            ) from None

    return wrapper
