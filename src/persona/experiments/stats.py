"""The statistics an experiment's results show, each returned as a frozen dataclass.

Every test compares one treatment with the control. Inputs are aggregates (counts, sums, sums of
squares), so a results query can compute them in the database; ``from_values`` builds them from
unit-level arrays. Intervals are two-sided at ``confidence`` (0.95 unless told). Distributions
come from scipy; nothing here draws random numbers. ``docs/experiments.md`` explains each number,
its assumptions and when not to trust it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from persona.errors import InsufficientDataError, InvalidExperimentError

FloatArray = npt.NDArray[np.float64]
Interval = tuple[float, float]
BAYES_NODES = 20_000  # quantile nodes of the integral behind the probability to beat control


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidExperimentError("confidence must be in (0, 1)")


def _z(confidence: float) -> float:
    _check_confidence(confidence)
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _two_sided_normal_p(z: float) -> float:
    return float(2 * stats.norm.sf(abs(z)))


# --- rates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversions:
    """Units exposed in one arm and how many of them converted (0 or 1 each)."""

    units: int
    conversions: int

    def __post_init__(self) -> None:
        if self.units < 0 or not 0 <= self.conversions <= self.units:
            raise InvalidExperimentError(
                "conversions must be between 0 and the number of units",
                extra={"units": self.units, "conversions": self.conversions},
            )

    @property
    def rate(self) -> float:
        return self.conversions / self.units if self.units else math.nan


@dataclass(frozen=True)
class ProportionTest:
    """Two-proportion z-test of treatment vs control, with lifts and their intervals.

    The p-value uses the pooled rate (the variance under "no difference"); the interval of the
    absolute lift uses each arm's own rate (Wald). The interval of the relative lift comes from
    the delta method on log(treatment rate / control rate), mapped back with exp(.) - 1, so it is
    asymmetric; it is ``None`` when either rate is 0, and ``relative_lift`` is ``None`` when the
    control rate is 0.
    """

    control_rate: float
    treatment_rate: float
    absolute_lift: float
    absolute_lift_ci: Interval
    relative_lift: float | None
    relative_lift_ci: Interval | None
    z: float
    p_value: float
    confidence: float


def two_proportion_test(
    control: Conversions, treatment: Conversions, *, confidence: float = 0.95
) -> ProportionTest:
    if control.units == 0 or treatment.units == 0:
        raise InsufficientDataError("both arms need at least one unit")
    n_c, n_t = control.units, treatment.units
    p_c, p_t = control.rate, treatment.rate
    pooled = (control.conversions + treatment.conversions) / (n_c + n_t)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    if pooled_se == 0:
        raise InsufficientDataError("no variance yet: no arm has both converted and other units")
    difference = p_t - p_c
    z = difference / pooled_se
    critical = _z(confidence)
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    relative: float | None = None
    relative_ci: Interval | None = None
    if p_c > 0:
        relative = p_t / p_c - 1
    if p_c > 0 and p_t > 0:
        log_se = math.sqrt((1 - p_t) / (n_t * p_t) + (1 - p_c) / (n_c * p_c))
        log_ratio = math.log(p_t / p_c)
        relative_ci = (
            math.expm1(log_ratio - critical * log_se),
            math.expm1(log_ratio + critical * log_se),
        )
    return ProportionTest(
        control_rate=p_c,
        treatment_rate=p_t,
        absolute_lift=difference,
        absolute_lift_ci=(difference - critical * se, difference + critical * se),
        relative_lift=relative,
        relative_lift_ci=relative_ci,
        z=z,
        p_value=_two_sided_normal_p(z),
        confidence=confidence,
    )


# --- means (revenue per unit) ---------------------------------------------------------------


@dataclass(frozen=True)
class MeanSummary:
    """A metric's count, mean and sample variance (ddof=1) in one arm."""

    units: int
    mean: float
    variance: float

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> MeanSummary:
        array = np.asarray(values, dtype=np.float64)
        variance = float(array.var(ddof=1)) if array.size > 1 else math.nan
        return cls(int(array.size), float(array.mean()) if array.size else math.nan, variance)

    @classmethod
    def from_sums(cls, units: int, total: float, total_of_squares: float) -> MeanSummary:
        """From SQL-friendly aggregates: COUNT, SUM(value) and SUM(value * value)."""
        if units < 2:
            return cls(units, total / units if units else math.nan, math.nan)
        mean = total / units
        # Clamped at 0: rounding can make a constant metric's variance slightly negative.
        variance = max(0.0, (total_of_squares - units * mean * mean) / (units - 1))
        return cls(units, mean, variance)


@dataclass(frozen=True)
class WelchTest:
    """Welch's t-test of the difference of means (treatment - control), unequal variances."""

    control_mean: float
    treatment_mean: float
    difference: float
    difference_ci: Interval
    relative_difference: float | None
    t: float
    degrees_of_freedom: float
    p_value: float
    confidence: float


def welch_test(
    control: MeanSummary, treatment: MeanSummary, *, confidence: float = 0.95
) -> WelchTest:
    if control.units < 2 or treatment.units < 2:
        raise InsufficientDataError("Welch's test needs at least two units in each arm")
    v_c = control.variance / control.units
    v_t = treatment.variance / treatment.units
    se = math.sqrt(v_c + v_t)
    if se == 0:
        raise InsufficientDataError("no variance yet: the metric is constant in both arms")
    # Welch-Satterthwaite degrees of freedom.
    df = (v_c + v_t) ** 2 / (v_c**2 / (control.units - 1) + v_t**2 / (treatment.units - 1))
    difference = treatment.mean - control.mean
    t = difference / se
    _check_confidence(confidence)
    critical = float(stats.t.ppf(0.5 + confidence / 2, df))
    return WelchTest(
        control_mean=control.mean,
        treatment_mean=treatment.mean,
        difference=difference,
        difference_ci=(difference - critical * se, difference + critical * se),
        relative_difference=difference / control.mean if control.mean else None,
        t=t,
        degrees_of_freedom=df,
        p_value=float(2 * stats.t.sf(abs(t), df)),
        confidence=confidence,
    )


# --- always-valid sequential test (mSPRT) ---------------------------------------------------


def msprt_log_likelihood_ratio(
    difference: npt.ArrayLike,
    variance: npt.ArrayLike,
    *,
    mixing_sd: float,
    null: float = 0.0,
) -> FloatArray:
    """log Lambda of the mixture SPRT with a N(null, mixing_sd^2) mixing distribution.

    ``difference`` estimates the treatment - control effect and ``variance`` is its variance
    (sigma_t^2 / n_t + sigma_c^2 / n_c). With s2 = variance and t2 = mixing_sd^2:
    Lambda = sqrt(s2 / (s2 + t2)) * exp(t2 * (difference - null)^2 / (2 * s2 * (s2 + t2))),
    which for n pairs and per-pair variance V is Johari et al.'s
    sqrt(V / (V + n t2)) * exp(n^2 t2 (difference - null)^2 / (2 V (V + n t2))).
    Where the variance is 0 (no information yet) Lambda is 1.
    """
    if not mixing_sd > 0:
        raise InvalidExperimentError("mixing_sd must be positive")
    d = np.asarray(difference, dtype=np.float64) - null
    s2 = np.asarray(variance, dtype=np.float64)
    t2 = mixing_sd**2
    informed = s2 > 0
    safe = np.where(informed, s2, 1.0)
    log_lambda = 0.5 * np.log(safe / (safe + t2)) + t2 * d**2 / (2 * safe * (safe + t2))
    return np.asarray(np.where(informed, log_lambda, 0.0), dtype=np.float64)


def always_valid_p_values(
    difference: npt.ArrayLike, variance: npt.ArrayLike, *, mixing_sd: float
) -> FloatArray:
    """p_n = min(p_(n-1), 1 / Lambda_n) along the last axis (the looks), p_0 = 1."""
    log_lambda = msprt_log_likelihood_ratio(difference, variance, mixing_sd=mixing_sd)
    return np.asarray(np.minimum.accumulate(np.exp(-np.maximum(log_lambda, 0.0)), axis=-1))


def confidence_radius(
    variance: npt.ArrayLike, *, mixing_sd: float, confidence: float
) -> FloatArray:
    """Half-width of {theta : Lambda_n(theta) < 1 / alpha} at each look (infinite if no data)."""
    _check_confidence(confidence)
    if not mixing_sd > 0:
        raise InvalidExperimentError("mixing_sd must be positive")
    s2 = np.asarray(variance, dtype=np.float64)
    t2 = mixing_sd**2
    informed = s2 > 0
    safe = np.where(informed, s2, 1.0)
    alpha = 1 - confidence
    squared = 2 * safe * (safe + t2) / t2 * (math.log(1 / alpha) + 0.5 * np.log((safe + t2) / safe))
    return np.asarray(np.where(informed, np.sqrt(squared), np.inf), dtype=np.float64)


@dataclass(frozen=True)
class SequentialTest:
    """The mSPRT after the latest look; safe to read after every batch of units.

    ``p_value`` is always valid: the chance that it ever drops to alpha or below, at any look,
    is at most alpha when there is no effect. ``ci`` is the confidence sequence (the running
    intersection of each look's interval); it covers the true difference at every look at once
    with probability ``confidence``.
    """

    looks: int
    difference: float
    likelihood_ratio: float
    p_value: float
    ci: Interval
    rejected: bool
    mixing_sd: float
    confidence: float


def sequential_test(
    differences: Sequence[float] | FloatArray,
    variances: Sequence[float] | FloatArray,
    *,
    mixing_sd: float,
    confidence: float = 0.95,
    previous: SequentialTest | None = None,
) -> SequentialTest:
    """mSPRT over new looks (estimates of the effect and of its variance, oldest first).

    Pass the result of the earlier looks as ``previous`` to continue from stored state instead
    of replaying every look; the answer is the same as one call over all looks.
    """
    d = np.asarray(differences, dtype=np.float64)
    s2 = np.asarray(variances, dtype=np.float64)
    if d.ndim != 1 or d.shape != s2.shape or (d.size == 0 and previous is None):
        raise InvalidExperimentError("give one difference and one variance per look")
    if previous is not None and (
        previous.mixing_sd != mixing_sd or previous.confidence != confidence
    ):
        raise InvalidExperimentError("a sequential test cannot change its settings midway")
    if d.size == 0:
        assert previous is not None
        return previous
    p_values = always_valid_p_values(d, s2, mixing_sd=mixing_sd)
    radius = confidence_radius(s2, mixing_sd=mixing_sd, confidence=confidence)
    lower = float(np.max(d - radius))
    upper = float(np.min(d + radius))
    p_value = float(p_values[-1])
    if previous is not None:
        p_value = min(p_value, previous.p_value)
        lower, upper = max(lower, previous.ci[0]), min(upper, previous.ci[1])
    if lower > upper:
        # Only possible when the variance estimate moved abruptly (the model does not fit);
        # the latest look's own interval is then the honest answer.
        lower, upper = float(d[-1] - radius[-1]), float(d[-1] + radius[-1])
    log_lambda = msprt_log_likelihood_ratio(d[-1], s2[-1], mixing_sd=mixing_sd)
    return SequentialTest(
        looks=int(d.size) + (previous.looks if previous else 0),
        difference=float(d[-1]),
        likelihood_ratio=float(np.exp(log_lambda)),
        p_value=p_value,
        ci=(lower, upper),
        rejected=p_value <= 1 - confidence,
        mixing_sd=mixing_sd,
        confidence=confidence,
    )


def proportion_difference(
    control_units: npt.ArrayLike,
    control_conversions: npt.ArrayLike,
    treatment_units: npt.ArrayLike,
    treatment_conversions: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """Difference of rates and its variance under the pooled rate, elementwise (0 if empty)."""
    n_c = np.asarray(control_units, dtype=np.float64)
    n_t = np.asarray(treatment_units, dtype=np.float64)
    x_c = np.asarray(control_conversions, dtype=np.float64)
    x_t = np.asarray(treatment_conversions, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        difference = np.where((n_c > 0) & (n_t > 0), x_t / n_t - x_c / n_c, 0.0)
        pooled = (x_c + x_t) / (n_c + n_t)
        variance = np.where((n_c > 0) & (n_t > 0), pooled * (1 - pooled) * (1 / n_c + 1 / n_t), 0.0)
    return np.asarray(difference), np.asarray(variance)


def sequential_proportion_test(
    control: Sequence[Conversions],
    treatment: Sequence[Conversions],
    *,
    mixing_sd: float,
    confidence: float = 0.95,
    previous: SequentialTest | None = None,
) -> SequentialTest:
    """mSPRT on conversion rates; each element is an arm's cumulative counts at one look."""
    if len(control) != len(treatment):
        raise InvalidExperimentError("control and treatment need the same looks")
    difference, variance = proportion_difference(
        [c.units for c in control],
        [c.conversions for c in control],
        [t.units for t in treatment],
        [t.conversions for t in treatment],
    )
    return sequential_test(
        difference, variance, mixing_sd=mixing_sd, confidence=confidence, previous=previous
    )


def sequential_mean_test(
    control: Sequence[MeanSummary],
    treatment: Sequence[MeanSummary],
    *,
    mixing_sd: float,
    confidence: float = 0.95,
    previous: SequentialTest | None = None,
) -> SequentialTest:
    """mSPRT on a mean (revenue per unit); each element is an arm's cumulative summary."""
    if len(control) != len(treatment):
        raise InvalidExperimentError("control and treatment need the same looks")
    difference = [t.mean - c.mean for c, t in zip(control, treatment, strict=True)]
    variance = [
        t.variance / t.units + c.variance / c.units
        if c.units > 1 and t.units > 1 and math.isfinite(c.variance + t.variance)
        else 0.0
        for c, t in zip(control, treatment, strict=True)
    ]
    return sequential_test(
        np.nan_to_num(difference),
        variance,
        mixing_sd=mixing_sd,
        confidence=confidence,
        previous=previous,
    )


# --- Bayesian probability to beat control ---------------------------------------------------


@dataclass(frozen=True)
class BayesianComparison:
    """Beta posteriors of both rates and P(treatment rate > control rate | data)."""

    control_posterior: tuple[float, float]
    treatment_posterior: tuple[float, float]
    probability_to_beat_control: float


def probability_to_beat_control(
    control: Conversions,
    treatment: Conversions,
    *,
    prior: tuple[float, float] = (1.0, 1.0),
) -> BayesianComparison:
    """P(p_t > p_c) under independent Beta(prior) priors, by numerical integration.

    P = E[F_c(p_t)] with F_c the control posterior's CDF, integrated by the midpoint rule on
    ``BAYES_NODES`` quantiles of the treatment posterior: deterministic, no random draws, and
    accurate to about 1e-4 even when the posteriors barely overlap.
    """
    a, b = prior
    if not (a > 0 and b > 0):
        raise InvalidExperimentError("Beta prior parameters must be positive")
    control_posterior = (a + control.conversions, b + control.units - control.conversions)
    treatment_posterior = (a + treatment.conversions, b + treatment.units - treatment.conversions)
    nodes = (np.arange(BAYES_NODES) + 0.5) / BAYES_NODES
    treatment_quantiles = stats.beta.ppf(nodes, *treatment_posterior)
    probability = float(np.mean(stats.beta.cdf(treatment_quantiles, *control_posterior)))
    return BayesianComparison(control_posterior, treatment_posterior, probability)


# --- sample ratio mismatch ------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRatioCheck:
    """Chi-square goodness of fit of the units per arm against the configured weights."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi_square: float
    p_value: float
    threshold: float
    mismatch: bool


def sample_ratio_check(
    observed: Sequence[int], weights: Sequence[float], *, threshold: float = 0.001
) -> SampleRatioCheck:
    """Warn (``mismatch``) when p < ``threshold``: the split is not what was configured."""
    if len(observed) != len(weights) or len(observed) < 2:
        raise InvalidExperimentError("give one count and one weight per arm, at least two arms")
    counts = np.asarray(observed, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if np.any(counts < 0) or np.any(w < 0) or w.sum() <= 0:
        raise InvalidExperimentError("counts and weights must be non-negative")
    total = counts.sum()
    if total == 0:
        raise InsufficientDataError("no units yet")
    expected = total * w / w.sum()
    live = w > 0
    if np.any(counts[~live] > 0):
        # Units in an arm configured to get none: the split is broken whatever the rest says.
        chi_square, p_value = math.inf, 0.0
    elif live.sum() < 2:
        chi_square, p_value = 0.0, 1.0
    else:
        result = stats.chisquare(counts[live], expected[live])
        chi_square, p_value = float(result.statistic), float(result.pvalue)
    return SampleRatioCheck(
        observed=tuple(int(c) for c in counts),
        expected=tuple(float(e) for e in expected),
        chi_square=chi_square,
        p_value=p_value,
        threshold=threshold,
        mismatch=p_value < threshold,
    )


# --- CUPED ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CovariateSummary:
    """One arm's metric Y and pre-experiment covariate X: count, means, (co)variances (ddof=1)."""

    units: int
    mean_y: float
    mean_x: float
    variance_y: float
    variance_x: float
    covariance: float

    @classmethod
    def from_values(cls, y: npt.ArrayLike, x: npt.ArrayLike) -> CovariateSummary:
        ys = np.asarray(y, dtype=np.float64)
        xs = np.asarray(x, dtype=np.float64)
        if ys.shape != xs.shape or ys.ndim != 1 or ys.size < 2:
            raise InsufficientDataError("CUPED needs paired values for at least two units")
        matrix = np.cov(ys, xs, ddof=1)
        return cls(
            int(ys.size),
            float(ys.mean()),
            float(xs.mean()),
            float(matrix[0, 0]),
            float(matrix[1, 1]),
            float(matrix[0, 1]),
        )

    @classmethod
    def from_sums(
        cls,
        units: int,
        sum_y: float,
        sum_x: float,
        sum_yy: float,
        sum_xx: float,
        sum_xy: float,
    ) -> CovariateSummary:
        """From SQL-friendly aggregates: COUNT and the sums of Y, X, Y*Y, X*X and X*Y."""
        if units < 2:
            raise InsufficientDataError("CUPED needs at least two units in each arm")
        my, mx = sum_y / units, sum_x / units
        return cls(
            units,
            my,
            mx,
            max(0.0, (sum_yy - units * my * my) / (units - 1)),
            max(0.0, (sum_xx - units * mx * mx) / (units - 1)),
            (sum_xy - units * mx * my) / (units - 1),
        )


@dataclass(frozen=True)
class CupedResult:
    """The metric adjusted by a pre-experiment covariate: Y - theta * (X - mean of X).

    ``theta`` = cov(Y, X) / var(X) over both arms together. ``variance_reduction`` is
    1 - Var(adjusted difference) / Var(raw difference), about corr(Y, X)^2. ``test`` is Welch's
    test on the adjusted metric, ``unadjusted`` the same test on Y.
    """

    theta: float
    covariate_mean: float
    control_mean: float
    treatment_mean: float
    variance_reduction: float
    test: WelchTest
    unadjusted: WelchTest


def cuped_test(
    control: CovariateSummary, treatment: CovariateSummary, *, confidence: float = 0.95
) -> CupedResult:
    arms = (control, treatment)
    units = sum(a.units for a in arms)
    mean_x = sum(a.units * a.mean_x for a in arms) / units
    mean_y = sum(a.units * a.mean_y for a in arms) / units
    # Pooled (co)variance of the two arms together, from each arm's moments.
    co_moment = sum(
        (a.units - 1) * a.covariance + a.units * (a.mean_x - mean_x) * (a.mean_y - mean_y)
        for a in arms
    )
    x_moment = sum((a.units - 1) * a.variance_x + a.units * (a.mean_x - mean_x) ** 2 for a in arms)
    theta = co_moment / x_moment if x_moment > 0 else 0.0

    def adjusted(arm: CovariateSummary) -> MeanSummary:
        variance = arm.variance_y - 2 * theta * arm.covariance + theta**2 * arm.variance_x
        return MeanSummary(
            arm.units, arm.mean_y - theta * (arm.mean_x - mean_x), max(0.0, variance)
        )

    def raw(arm: CovariateSummary) -> MeanSummary:
        return MeanSummary(arm.units, arm.mean_y, arm.variance_y)

    adjusted_c, adjusted_t = adjusted(control), adjusted(treatment)
    raw_variance = control.variance_y / control.units + treatment.variance_y / treatment.units
    adjusted_variance = adjusted_c.variance / control.units + adjusted_t.variance / treatment.units
    return CupedResult(
        theta=theta,
        covariate_mean=mean_x,
        control_mean=adjusted_c.mean,
        treatment_mean=adjusted_t.mean,
        variance_reduction=1 - adjusted_variance / raw_variance if raw_variance > 0 else 0.0,
        test=welch_test(adjusted_c, adjusted_t, confidence=confidence),
        unadjusted=welch_test(raw(control), raw(treatment), confidence=confidence),
    )
