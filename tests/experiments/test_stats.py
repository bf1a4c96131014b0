"""Experiment statistics against hand-computed cases, scipy references and small simulations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special, stats

from persona.errors import InsufficientDataError, InvalidExperimentError
from persona.experiments.stats import (
    Conversions,
    CovariateSummary,
    MeanSummary,
    confidence_radius,
    cuped_test,
    msprt_log_likelihood_ratio,
    probability_to_beat_control,
    proportion_difference,
    sample_ratio_check,
    sequential_mean_test,
    sequential_proportion_test,
    sequential_test,
    two_proportion_test,
    welch_test,
)

# --- two-proportion z-test ------------------------------------------------------------------


def test_two_proportion_hand_computed_case() -> None:
    result = two_proportion_test(Conversions(1000, 100), Conversions(1000, 120))
    # pooled 0.11: se = sqrt(0.11 * 0.89 * 2 / 1000) = 0.01399286, z = 0.02 / se
    assert result.control_rate == 0.1
    assert result.treatment_rate == 0.12
    assert result.absolute_lift == pytest.approx(0.02)
    assert result.z == pytest.approx(1.429301, abs=1e-6)
    assert result.p_value == pytest.approx(0.152918, abs=1e-6)
    # Wald: se = sqrt(0.1 * 0.9 / 1000 + 0.12 * 0.88 / 1000) = 0.01398571
    assert result.absolute_lift_ci == pytest.approx((-0.0074115, 0.0474115), abs=1e-6)
    # Delta method on log(0.12 / 0.1): se = sqrt(0.9 / 100 + 0.88 / 120) = 0.12780193
    assert result.relative_lift == pytest.approx(0.2)
    assert result.relative_lift_ci == pytest.approx((-0.065894, 0.541581), abs=1e-6)


def test_two_proportion_p_value_equals_the_uncorrected_chi_square() -> None:
    table = np.array([[431, 9569], [502, 9498]])
    result = two_proportion_test(Conversions(10_000, 431), Conversions(10_000, 502))
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    assert result.z**2 == pytest.approx(chi2)
    assert result.p_value == pytest.approx(p_value)


def test_two_proportion_confidence_level_widens_the_interval() -> None:
    narrow = two_proportion_test(Conversions(5000, 250), Conversions(5000, 280), confidence=0.9)
    wide = two_proportion_test(Conversions(5000, 250), Conversions(5000, 280), confidence=0.99)
    assert wide.absolute_lift_ci[0] < narrow.absolute_lift_ci[0]
    assert wide.absolute_lift_ci[1] > narrow.absolute_lift_ci[1]


def test_two_proportion_edge_cases() -> None:
    zero_control = two_proportion_test(Conversions(100, 0), Conversions(100, 3))
    assert zero_control.relative_lift is None and zero_control.relative_lift_ci is None
    zero_treatment = two_proportion_test(Conversions(100, 3), Conversions(100, 0))
    assert zero_treatment.relative_lift == -1.0 and zero_treatment.relative_lift_ci is None
    with pytest.raises(InsufficientDataError):
        two_proportion_test(Conversions(0, 0), Conversions(10, 1))
    with pytest.raises(InsufficientDataError):
        two_proportion_test(Conversions(10, 0), Conversions(10, 0))
    with pytest.raises(InvalidExperimentError):
        Conversions(10, 11)


# --- Welch ----------------------------------------------------------------------------------


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    control = rng.exponential(10.0, 400) * (rng.random(400) < 0.3)
    treatment = rng.exponential(12.0, 300) * (rng.random(300) < 0.3)
    ours = welch_test(MeanSummary.from_values(control), MeanSummary.from_values(treatment))
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    assert ours.t == pytest.approx(reference.statistic)
    assert ours.p_value == pytest.approx(reference.pvalue)
    assert ours.degrees_of_freedom == pytest.approx(reference.df)
    ci = reference.confidence_interval(0.95)
    assert ours.difference_ci == pytest.approx((ci.low, ci.high))
    assert ours.relative_difference == pytest.approx(ours.difference / control.mean())


def test_mean_summary_from_sums_matches_from_values() -> None:
    values = np.array([0.0, 0.0, 12.5, 3.0, 0.0, 99.0, 7.25])
    from_sums = MeanSummary.from_sums(len(values), values.sum(), (values**2).sum())
    from_values = MeanSummary.from_values(values)
    assert from_sums.units == from_values.units
    assert from_sums.mean == pytest.approx(from_values.mean)
    assert from_sums.variance == pytest.approx(from_values.variance)


def test_welch_needs_data_and_variance() -> None:
    with pytest.raises(InsufficientDataError):
        welch_test(MeanSummary(1, 3.0, math.nan), MeanSummary(5, 1.0, 1.0))
    with pytest.raises(InsufficientDataError):
        welch_test(MeanSummary(5, 0.0, 0.0), MeanSummary(5, 0.0, 0.0))


# --- sequential (mSPRT) ---------------------------------------------------------------------


def test_mixture_likelihood_ratio_hand_computed() -> None:
    # s2 = t2 = 1e-4, d = 0.01: Lambda = sqrt(1/2) * exp(1e-8 / (2 * 1e-4 * 2e-4)) = 0.907943
    log_lambda = msprt_log_likelihood_ratio(0.01, 1e-4, mixing_sd=0.01)
    assert math.exp(float(log_lambda)) == pytest.approx(math.sqrt(0.5) * math.exp(0.25))
    # Johari et al.'s form with n pairs of per-pair variance V gives the same number.
    n, v, tau2, d = 400, 0.04, 1e-4, 0.01
    johari = math.sqrt(v / (v + n * tau2)) * math.exp(n**2 * tau2 * d**2 / (2 * v * (v + n * tau2)))
    ours = math.exp(float(msprt_log_likelihood_ratio(d, v / n, mixing_sd=math.sqrt(tau2))))
    assert ours == pytest.approx(johari)
    assert float(msprt_log_likelihood_ratio(0.3, 0.0, mixing_sd=0.01)) == 0.0


def test_confidence_radius_is_where_lambda_reaches_one_over_alpha() -> None:
    variance, tau = 2.5e-6, 0.004
    radius = float(confidence_radius(variance, mixing_sd=tau, confidence=0.95))
    at_edge = msprt_log_likelihood_ratio(0.01, variance, mixing_sd=tau, null=0.01 + radius)
    assert math.exp(float(at_edge)) == pytest.approx(20.0)


def a_path(rng: np.random.Generator, looks: int, rate_c: float, rate_t: float) -> tuple:
    batch = rng.binomial(100, 0.5, looks)
    n_t = np.cumsum(batch)
    n_c = np.cumsum(100 - batch)
    x_t = np.cumsum(rng.binomial(batch, rate_t))
    x_c = np.cumsum(rng.binomial(100 - batch, rate_c))
    return n_c, x_c, n_t, x_t


def test_sequential_p_value_is_monotone_non_increasing() -> None:
    rng = np.random.default_rng(11)
    n_c, x_c, n_t, x_t = a_path(rng, 200, 0.05, 0.06)
    p_values = []
    ci = []
    previous = None
    for look in range(200):
        previous = sequential_proportion_test(
            [Conversions(int(n_c[look]), int(x_c[look]))],
            [Conversions(int(n_t[look]), int(x_t[look]))],
            mixing_sd=0.005,
            previous=previous,
        )
        p_values.append(previous.p_value)
        ci.append(previous.ci)
    assert all(b <= a for a, b in itertools.pairwise(p_values))
    assert p_values[0] <= 1.0 and previous is not None and previous.looks == 200
    # The confidence sequence only ever narrows.
    assert all(b[0] >= a[0] and b[1] <= a[1] for a, b in itertools.pairwise(ci))


def test_continuing_from_previous_equals_one_pass() -> None:
    rng = np.random.default_rng(5)
    n_c, x_c, n_t, x_t = a_path(rng, 60, 0.05, 0.07)
    control = [Conversions(int(n), int(x)) for n, x in zip(n_c, x_c, strict=True)]
    treatment = [Conversions(int(n), int(x)) for n, x in zip(n_t, x_t, strict=True)]
    whole = sequential_proportion_test(control, treatment, mixing_sd=0.01)
    first = sequential_proportion_test(control[:25], treatment[:25], mixing_sd=0.01)
    rest = sequential_proportion_test(control[25:], treatment[25:], mixing_sd=0.01, previous=first)
    assert rest == whole
    with pytest.raises(InvalidExperimentError):
        sequential_proportion_test(control, treatment, mixing_sd=0.02, previous=first)


def test_peeking_inflates_the_fixed_test_but_not_the_sequential_one() -> None:
    rng = np.random.default_rng(2024)
    experiments, looks = 400, 100
    paths = [a_path(rng, looks, 0.05, 0.05) for _ in range(experiments)]
    n_c, x_c, n_t, x_t = (np.stack(column) for column in zip(*paths, strict=True))
    difference, variance = proportion_difference(n_c, x_c, n_t, x_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(variance > 0, difference / np.sqrt(variance), 0.0)
    peeking_fixed = np.mean(np.any(np.abs(z) > 1.959964, axis=1))
    sequential = np.mean(
        [
            sequential_test(difference[i], variance[i], mixing_sd=0.005).rejected
            for i in range(experiments)
        ]
    )
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / experiments)
    assert sequential <= bound
    assert peeking_fixed > 0.12  # checking a fixed test 100 times: many false alarms


def test_sequential_detects_a_large_effect_and_covers_it() -> None:
    rng = np.random.default_rng(8)
    n_c, x_c, n_t, x_t = a_path(rng, 200, 0.05, 0.08)
    difference, variance = proportion_difference(n_c, x_c, n_t, x_t)
    result = sequential_test(difference, variance, mixing_sd=0.01)
    assert result.rejected and result.p_value < 0.01
    assert result.ci[0] < 0.03 < result.ci[1]


def test_sequential_mean_test_runs_on_summaries() -> None:
    rng = np.random.default_rng(9)
    control = rng.normal(10, 3, 4000)
    treatment = rng.normal(11, 3, 4000)
    looks = range(200, 4001, 200)
    result = sequential_mean_test(
        [MeanSummary.from_values(control[:n]) for n in looks],
        [MeanSummary.from_values(treatment[:n]) for n in looks],
        mixing_sd=1.0,
    )
    assert result.looks == 20 and result.rejected
    assert result.ci[0] < 1.0 < result.ci[1]


# --- Bayesian probability to beat control ---------------------------------------------------


def exact_probability_b_beats_a(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Closed form for integer Beta parameters (Evan Miller's formula)."""
    alpha_a, beta_a = a
    alpha_b, beta_b = b
    total = 0.0
    for i in range(alpha_b):
        total += math.exp(
            special.betaln(alpha_a + i, beta_a + beta_b)
            - math.log(beta_b + i)
            - special.betaln(1 + i, beta_b)
            - special.betaln(alpha_a, beta_a)
        )
    return total


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((100, 12), (100, 18)), ((40, 3), (60, 2)), ((500, 25), (500, 40)), ((20, 0), (20, 1))],
)
def test_probability_to_beat_control_matches_the_closed_form(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    result = probability_to_beat_control(Conversions(*control), Conversions(*treatment))
    a = (1 + control[1], 1 + control[0] - control[1])
    b = (1 + treatment[1], 1 + treatment[0] - treatment[1])
    assert result.control_posterior == a and result.treatment_posterior == b
    assert result.probability_to_beat_control == pytest.approx(
        exact_probability_b_beats_a(a, b), abs=2e-4
    )


def test_probability_to_beat_control_agrees_with_monte_carlo_at_scale() -> None:
    control, treatment = Conversions(20_000, 1000), Conversions(20_000, 1060)
    result = probability_to_beat_control(control, treatment)
    rng = np.random.default_rng(1)
    draws = 1_000_000
    c = rng.beta(*result.control_posterior, draws)
    t = rng.beta(*result.treatment_posterior, draws)
    assert result.probability_to_beat_control == pytest.approx(np.mean(t > c), abs=0.002)
    same = probability_to_beat_control(control, control)
    assert same.probability_to_beat_control == pytest.approx(0.5, abs=1e-4)


# --- sample ratio mismatch ------------------------------------------------------------------


def test_srm_fires_on_a_52_48_split_of_20k_units() -> None:
    check = sample_ratio_check([10_400, 9_600], [0.5, 0.5])
    assert check.chi_square == pytest.approx(32.0)
    assert check.p_value == pytest.approx(stats.chi2.sf(32.0, 1))
    assert check.mismatch


@pytest.mark.parametrize("observed", [[10_000, 10_000], [10_050, 9_950], [9_930, 10_070]])
def test_srm_quiet_on_a_fair_split(observed: list[int]) -> None:
    assert not sample_ratio_check(observed, [1, 1]).mismatch


def test_srm_threshold_weights_and_zero_weight_arms() -> None:
    three = sample_ratio_check([5_000, 3_100, 1_900], [5, 3, 2])
    assert three.expected == (5_000.0, 3_000.0, 2_000.0) and not three.mismatch
    assert sample_ratio_check([10_150, 9_850], [1, 1], threshold=0.05).mismatch
    assert not sample_ratio_check([10_150, 9_850], [1, 1]).mismatch
    broken = sample_ratio_check([100, 95, 3], [1, 1, 0])
    assert broken.mismatch and broken.p_value == 0.0
    with pytest.raises(InsufficientDataError):
        sample_ratio_check([0, 0], [1, 1])


# --- CUPED ----------------------------------------------------------------------------------


def correlated_experiment(
    rng: np.random.Generator, rho: float, n: int, effect: float
) -> tuple[np.ndarray, ...]:
    x_c, x_t = rng.normal(50, 10, n), rng.normal(50, 10, n)
    noise = math.sqrt(1 - rho**2)
    y_c = 20 + rho * (x_c - 50) + noise * rng.normal(0, 10, n)
    y_t = 20 + effect + rho * (x_t - 50) + noise * rng.normal(0, 10, n)
    return y_c, x_c, y_t, x_t


def test_cuped_reduces_variance_with_a_correlated_covariate() -> None:
    rng = np.random.default_rng(4)
    y_c, x_c, y_t, x_t = correlated_experiment(rng, rho=0.7, n=5000, effect=0.5)
    result = cuped_test(
        CovariateSummary.from_values(y_c, x_c), CovariateSummary.from_values(y_t, x_t)
    )
    all_y, all_x = np.concatenate([y_c, y_t]), np.concatenate([x_c, x_t])
    assert result.theta == pytest.approx(np.cov(all_y, all_x)[0, 1] / np.var(all_x, ddof=1))
    assert result.variance_reduction == pytest.approx(0.49, abs=0.04)
    adjusted_width = result.test.difference_ci[1] - result.test.difference_ci[0]
    raw_width = result.unadjusted.difference_ci[1] - result.unadjusted.difference_ci[0]
    assert adjusted_width < 0.75 * raw_width
    assert result.test.p_value < result.unadjusted.p_value
    assert result.test.difference_ci[0] < 0.5 < result.test.difference_ci[1]
    # The adjusted arm means keep the overall mean: only the covariate's noise is removed.
    overall = (result.control_mean + result.treatment_mean) / 2
    assert overall == pytest.approx(all_y.mean())


def test_cuped_with_an_unrelated_covariate_changes_little() -> None:
    rng = np.random.default_rng(6)
    y_c, x_c, y_t, x_t = correlated_experiment(rng, rho=0.0, n=5000, effect=0.0)
    result = cuped_test(
        CovariateSummary.from_values(y_c, x_c), CovariateSummary.from_values(y_t, x_t)
    )
    assert abs(result.variance_reduction) < 0.01


def test_cuped_summaries_from_sums_match_from_values() -> None:
    rng = np.random.default_rng(7)
    y, x = rng.normal(5, 2, 300), rng.normal(1, 1, 300)
    from_sums = CovariateSummary.from_sums(
        300, y.sum(), x.sum(), (y * y).sum(), (x * x).sum(), (x * y).sum()
    )
    from_values = CovariateSummary.from_values(y, x)
    for name in ("mean_y", "mean_x", "variance_y", "variance_x", "covariance"):
        assert getattr(from_sums, name) == pytest.approx(getattr(from_values, name))


@given(
    n_c=st.integers(1, 100_000),
    n_t=st.integers(1, 100_000),
    share_c=st.floats(0, 1),
    share_t=st.floats(0, 1),
)
def test_two_proportion_invariants(n_c: int, n_t: int, share_c: float, share_t: float) -> None:
    control = Conversions(n_c, round(n_c * share_c))
    treatment = Conversions(n_t, round(n_t * share_t))
    if control.conversions + treatment.conversions in (0, n_c + n_t):
        return  # no variance: refused, tested above
    result = two_proportion_test(control, treatment)
    swapped = two_proportion_test(treatment, control)
    assert 0.0 <= result.p_value <= 1.0
    assert result.p_value == pytest.approx(swapped.p_value)
    assert result.absolute_lift == pytest.approx(-swapped.absolute_lift)
    low, high = result.absolute_lift_ci
    assert low <= result.absolute_lift <= high
    if result.relative_lift_ci is not None:
        assert result.relative_lift is not None
        assert (
            -1.0 < result.relative_lift_ci[0] <= result.relative_lift <= result.relative_lift_ci[1]
        )


def test_unusable_settings_are_refused() -> None:
    control, treatment = Conversions(1000, 50), Conversions(1000, 60)
    with pytest.raises(InvalidExperimentError):
        two_proportion_test(control, treatment, confidence=1.0)
    with pytest.raises(InvalidExperimentError):
        welch_test(MeanSummary(10, 1.0, 1.0), MeanSummary(10, 2.0, 1.0), confidence=0.0)
    with pytest.raises(InvalidExperimentError):
        sequential_proportion_test([control], [treatment], mixing_sd=0.0)
    with pytest.raises(InvalidExperimentError):
        confidence_radius(1e-4, mixing_sd=-1.0, confidence=0.95)
    with pytest.raises(InvalidExperimentError):
        probability_to_beat_control(control, treatment, prior=(0.0, 1.0))
    with pytest.raises(InvalidExperimentError):
        sample_ratio_check([10], [1])
