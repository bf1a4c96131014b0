"""Deterministic assignment of units (people, sessions, devices) to experiment variants.

A unit's variant is a pure function of (experiment id, version, unit id): the three are hashed
with BLAKE2b to a number uniform on [0, 1), which is mapped through the cumulative weights of the
variants. No state is kept, so the answer is the same in every process and after every restart.
Bumping the version reshuffles everyone.

The holdout is decided by a second hash of the same key under another salt (BLAKE2b's
``person`` parameter), so being held out is independent of the variant a unit would get. A
held-out unit is served the control and is reported apart from the experiment's arms.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from persona.errors import InvalidExperimentError

SPLIT_SALT = b"persona.split"
HOLDOUT_SALT = b"persona.holdout"
_MANTISSA_BITS = 53  # a double holds 53 bits exactly: k / 2**53 is uniform on [0, 1)


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float


@dataclass(frozen=True)
class ExperimentSplit:
    """How an experiment divides its traffic: weighted variants and an optional holdout.

    The first variant is the control unless ``control`` names another one. Weights are relative
    (``1, 1`` and ``0.5, 0.5`` are the same split); a variant may have weight 0 to stop sending
    it new units without renaming the others. ``holdout_share`` is the share of all units kept
    out of the experiment, in [0, 1).
    """

    experiment_id: str
    version: int
    variants: tuple[Variant, ...]
    holdout_share: float = 0.0
    control: str | None = None
    _cumulative: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if not names:
            raise InvalidExperimentError("an experiment needs at least one variant")
        if len(set(names)) != len(names):
            raise InvalidExperimentError("variant names must be unique", extra={"names": names})
        weights = [v.weight for v in self.variants]
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise InvalidExperimentError(
                "variant weights must be finite, non-negative and not all zero",
                extra={"weights": weights},
            )
        if not 0.0 <= self.holdout_share < 1.0:
            raise InvalidExperimentError(
                "holdout_share must be in [0, 1)", extra={"holdout_share": self.holdout_share}
            )
        if self.control is not None and self.control not in names:
            raise InvalidExperimentError(f"control {self.control!r} is not one of the variants")
        running = list(accumulate(weights))
        # Divide by the last running sum (not by sum()), so the final boundaries are exactly 1.0
        # and rounding never leaves a sliver of [0, 1) to a trailing zero-weight variant.
        cumulative = tuple(c / running[-1] for c in running)
        object.__setattr__(self, "_cumulative", cumulative)

    @property
    def control_variant(self) -> str:
        return self.control if self.control is not None else self.variants[0].name

    @property
    def shares(self) -> dict[str, float]:
        """Each variant's configured share of the units that are not held out."""
        total = sum(v.weight for v in self.variants)
        return {v.name: v.weight / total for v in self.variants}


@dataclass(frozen=True)
class Assignment:
    variant: str
    in_holdout: bool
    bucket: float  # the unit's uniform draw for the split, for logging and audits


def unit_uniform(experiment_id: str, version: int, unit_id: str, *, salt: bytes) -> float:
    """A number uniform on [0, 1) determined by the key and the salt alone."""
    digest = hashlib.blake2b(digest_size=8, person=salt)
    for part in (experiment_id, str(version), unit_id):
        encoded = part.encode("utf-8")
        # Length-prefixed, so ("ab", "c") and ("a", "bc") never hash alike.
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    top_bits = int.from_bytes(digest.digest(), "big") >> (64 - _MANTISSA_BITS)
    return top_bits / float(2**_MANTISSA_BITS)


def assign(split: ExperimentSplit, unit_id: str) -> Assignment:
    """The variant ``unit_id`` gets in ``split``; held-out units get the control."""
    key = (split.experiment_id, split.version, unit_id)
    bucket = unit_uniform(*key, salt=SPLIT_SALT)
    if split.holdout_share > 0 and unit_uniform(*key, salt=HOLDOUT_SALT) < split.holdout_share:
        return Assignment(split.control_variant, in_holdout=True, bucket=bucket)
    index = bisect.bisect_right(split._cumulative, bucket)
    return Assignment(split.variants[index].name, in_holdout=False, bucket=bucket)


def split_of(
    experiment_id: str,
    version: int,
    weights: Sequence[tuple[str, float]],
    *,
    holdout_share: float = 0.0,
    control: str | None = None,
) -> ExperimentSplit:
    """A split from ``(name, weight)`` pairs, for callers holding plain configuration."""
    return ExperimentSplit(
        experiment_id,
        version,
        tuple(Variant(name, float(weight)) for name, weight in weights),
        holdout_share=holdout_share,
        control=control,
    )
