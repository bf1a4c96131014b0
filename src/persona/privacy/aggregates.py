"""Aggregates that protect individuals: noisy segment sizes and a k-anonymity floor on exports.

A segment size changes by at most one when one person is added or removed (sensitivity 1), so
the Laplace mechanism with scale 1/epsilon gives epsilon-differential privacy for one release.
The noise comes from OpenDP's Laplace measurement (``make_laplace`` on floats, a sampler that
resists the floating-point attacks on naive Laplace noise). Repeated queries spend privacy
budget; persona does not track a budget, so callers should cache a released value.
"""

from __future__ import annotations

import math
from functools import cache
from types import ModuleType

from persona.errors import InvalidRequestError, KAnonymityError

SENSITIVITY = 1.0
MECHANISM = "laplace"
# The privacy loss a caller may ask for. Below the floor the noise (scale 1/epsilon) buries
# any count (a thousand at the floor), and far below it the scale is no finite number.
MIN_EPSILON = 0.001
MAX_EPSILON = 10.0


def noisy_count(count: int, epsilon: float) -> float:
    scale = SENSITIVITY / epsilon if epsilon > 0 else math.inf
    if not math.isfinite(scale):
        raise InvalidRequestError("epsilon must be a positive number")
    dp = _opendp()
    measurement = dp.m.make_laplace(
        dp.atom_domain(T=float, nan=False),
        dp.absolute_distance(T=float),
        scale=scale,
    )
    return max(0.0, float(measurement(float(count))))


def check_k_anonymity(size: int, k: int) -> None:
    if size < k:
        raise KAnonymityError(
            f"the segment has fewer than {k} members; exporting it could single people out",
            extra={"k": k},
        )


@cache
def _opendp() -> ModuleType:
    """OpenDP, imported when first needed: a tenth of a second of every command's start."""
    import opendp.prelude as dp

    dp.enable_features("contrib")  # OpenDP gates its floating-point Laplace behind "contrib"
    return dp
