"""Simulations that hold the experiment statistics and the bandit to their promises.

A/A: 2,000 experiments at a 5% conversion rate, 20,000 units each (about 10,000 per arm), units
arriving in batches of 100 split by a fair coin. Bars: the fixed-horizon z-test's false-positive
rate at alpha 0.05 is within [3.5%, 6.5%]; the mSPRT, checked after every batch of 100 units,
stays at or under 5%. The z-test checked after every batch is shown for contrast.

A/B: the same traffic with a true 10% relative lift (5% -> 5.5%): power of both tests, how
often the 95% interval of the relative lift covers the true lift (about 95% expected), and how
often the mSPRT's confidence sequence covers the true difference at every look at once (bars:
93.5% to 96.5%, and at least 95%, in every scenario). The A/B is repeated at four times the
traffic to show how power grows.

Bandit: arms with click rates 4%, 5% and 6% over 50,000 decisions, averaged over several seeds.
Bar: Thompson sampling's cumulative (expected) regret is under a third of uniform allocation's.

Everything is seeded; the script exits non-zero when a bar is missed. The tests are simulated
as whole arrays; the bandit runs the real policy classes one decision at a time, since each
decision depends on every reward before it.

    .venv/bin/python benchmarks/experiments_simulation.py
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats

from persona.decide.bandits import DEFAULT_BUCKET, Policy, ThompsonPolicy, UniformPolicy
from persona.experiments.stats import (
    Conversions,
    always_valid_p_values,
    confidence_radius,
    proportion_difference,
    two_proportion_test,
)

SEED = 20_260_101
EXPERIMENTS = 2_000
BASE_RATE = 0.05
RELATIVE_LIFT = 0.10
UNITS_PER_LOOK = 100
LOOKS = 200  # 20,000 units, about 10,000 per arm
ALPHA = 0.05
MIXING_SD = BASE_RATE * RELATIVE_LIFT  # the absolute effect worth finding: 0.5 points
AA_FIXED_BAR = (0.035, 0.065)
AA_SEQUENTIAL_BAR = 0.05
COVERAGE_BAR = (0.935, 0.965)  # 95% +- 3 standard errors of a share over 2,000 runs
SEQUENCE_COVERAGE_BAR = 0.95

BANDIT_RATES = {"4%": 0.04, "5%": 0.05, "6%": 0.06}
BANDIT_DECISIONS = 50_000
BANDIT_SEEDS = 5
REGRET_RATIO_BAR = 1 / 3


@dataclass(frozen=True)
class Simulated:
    """Cumulative counts per experiment (rows) at every look (columns)."""

    control_units: np.ndarray
    control_conversions: np.ndarray
    treatment_units: np.ndarray
    treatment_conversions: np.ndarray


@dataclass(frozen=True)
class TestOutcomes:
    fixed_rejections: float
    peeking_rejections: float
    sequential_rejections: float
    relative_ci_coverage: float
    sequence_coverage: float  # the confidence sequence holds the true difference at all looks
    units_at_sequential_stop: float  # median over the experiments that stopped


def simulate(rng: np.random.Generator, treatment_rate: float, looks: int = LOOKS) -> Simulated:
    shape = (EXPERIMENTS, looks)
    to_treatment = rng.binomial(UNITS_PER_LOOK, 0.5, shape)
    to_control = UNITS_PER_LOOK - to_treatment
    return Simulated(
        np.cumsum(to_control, axis=1),
        np.cumsum(rng.binomial(to_control, BASE_RATE), axis=1),
        np.cumsum(to_treatment, axis=1),
        np.cumsum(rng.binomial(to_treatment, treatment_rate), axis=1),
    )


def evaluate(sim: Simulated, true_relative_lift: float) -> TestOutcomes:
    true_difference = BASE_RATE * true_relative_lift
    fixed = [
        two_proportion_test(
            Conversions(int(sim.control_units[i, -1]), int(sim.control_conversions[i, -1])),
            Conversions(int(sim.treatment_units[i, -1]), int(sim.treatment_conversions[i, -1])),
        )
        for i in range(EXPERIMENTS)
    ]
    covered = [
        r.relative_lift_ci is not None
        and r.relative_lift_ci[0] <= true_relative_lift <= r.relative_lift_ci[1]
        for r in fixed
    ]
    difference, variance = proportion_difference(
        sim.control_units, sim.control_conversions, sim.treatment_units, sim.treatment_conversions
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(variance > 0, difference / np.sqrt(variance), 0.0)
    peeking = np.any(2 * stats.norm.sf(np.abs(z)) <= ALPHA, axis=1)
    p_values = always_valid_p_values(difference, variance, mixing_sd=MIXING_SD)
    stopped = p_values[:, -1] <= ALPHA
    radius = confidence_radius(variance, mixing_sd=MIXING_SD, confidence=1 - ALPHA)
    lower = np.max(difference - radius, axis=1)
    upper = np.min(difference + radius, axis=1)
    first_stop = np.argmax(p_values <= ALPHA, axis=1)
    return TestOutcomes(
        fixed_rejections=float(np.mean([r.p_value <= ALPHA for r in fixed])),
        peeking_rejections=float(peeking.mean()),
        sequential_rejections=float(stopped.mean()),
        relative_ci_coverage=float(np.mean(covered)),
        sequence_coverage=float(np.mean((lower <= true_difference) & (true_difference <= upper))),
        units_at_sequential_stop=float(np.median((first_stop[stopped] + 1) * UNITS_PER_LOOK))
        if stopped.any()
        else float("nan"),
    )


def regret(policy: Policy, world: np.random.Generator) -> float:
    """Cumulative expected regret: the best rate minus the chosen arm's rate, summed."""
    best = max(BANDIT_RATES.values())
    rates = np.array([BANDIT_RATES[arm] for arm in policy.arms])
    index = {arm: i for i, arm in enumerate(policy.arms)}
    pulls = np.zeros(len(rates))
    uniforms = world.random(BANDIT_DECISIONS)
    for step in range(BANDIT_DECISIONS):
        arm = policy.choose(DEFAULT_BUCKET)
        i = index[arm]
        pulls[i] += 1
        policy.update(DEFAULT_BUCKET, arm, float(uniforms[step] < rates[i]))
    return float(pulls @ (best - rates))


def main() -> int:
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    failures: list[str] = []

    aa = evaluate(simulate(rng, BASE_RATE), true_relative_lift=0.0)
    lifted = BASE_RATE * (1 + RELATIVE_LIFT)
    ab = evaluate(simulate(rng, lifted), true_relative_lift=RELATIVE_LIFT)
    ab_4x = evaluate(simulate(rng, lifted, looks=4 * LOOKS), true_relative_lift=RELATIVE_LIFT)
    tests_seconds = time.perf_counter() - started

    low, high = AA_FIXED_BAR
    if not low <= aa.fixed_rejections <= high:
        failures.append("A/A fixed-horizon false-positive rate")
    if aa.sequential_rejections > AA_SEQUENTIAL_BAR:
        failures.append("A/A sequential false-positive rate")
    for name, outcome in (("A/A", aa), ("A/B", ab), ("A/B 4x", ab_4x)):
        if not COVERAGE_BAR[0] <= outcome.relative_ci_coverage <= COVERAGE_BAR[1]:
            failures.append(f"{name} relative-lift interval coverage")
        if outcome.sequence_coverage < SEQUENCE_COVERAGE_BAR:
            failures.append(f"{name} confidence-sequence coverage")

    print(
        f"Tests: {EXPERIMENTS:,} experiments per scenario, {LOOKS * UNITS_PER_LOOK:,} units each "
        f"(~{LOOKS * UNITS_PER_LOOK // 2:,} per arm), base rate {BASE_RATE:.0%}, "
        f"a look every {UNITS_PER_LOOK} units, mSPRT mixing sd {MIXING_SD:.4f}"
    )
    print(f"{'scenario':<36} {'measured':>9}  bar")
    coverage_bar = f"in [{COVERAGE_BAR[0]:.1%}, {COVERAGE_BAR[1]:.1%}]"
    rows = [
        ("A/A fixed z-test false positives", aa.fixed_rejections, f"in [{low:.1%}, {high:.1%}]"),
        ("A/A mSPRT false positives, 200 looks", aa.sequential_rejections, "<= 5.0%"),
        ("A/A z-test peeked at 200 looks", aa.peeking_rejections, "(contrast, no bar)"),
        ("A/A rel. lift 95% CI covers 0", aa.relative_ci_coverage, coverage_bar),
        ("A/A mSPRT sequence covers 0", aa.sequence_coverage, ">= 95%"),
        ("A/B +10% fixed z-test power", ab.fixed_rejections, ""),
        ("A/B +10% mSPRT power", ab.sequential_rejections, ""),
        ("A/B rel. lift 95% CI covers +10%", ab.relative_ci_coverage, coverage_bar),
        ("A/B mSPRT sequence covers truth", ab.sequence_coverage, ">= 95%"),
        ("A/B 4x traffic: fixed power", ab_4x.fixed_rejections, "(~40,000 per arm)"),
        ("A/B 4x traffic: mSPRT power", ab_4x.sequential_rejections, ""),
        ("A/B 4x traffic: rel. CI covers", ab_4x.relative_ci_coverage, coverage_bar),
        ("A/B 4x traffic: sequence covers", ab_4x.sequence_coverage, ">= 95%"),
    ]
    for name, value, bar in rows:
        print(f"{name:<36} {value:>9.2%}  {bar}")
    for name, outcome, units in (("A/B", ab, LOOKS), ("A/B 4x traffic", ab_4x, 4 * LOOKS)):
        print(
            f"{name + ': mSPRT median stop':<36} {outcome.units_at_sequential_stop:>9,.0f}  "
            f"units of {units * UNITS_PER_LOOK:,}, among runs that stopped"
        )
    print(f"simulated tests in {tests_seconds:.1f} s")

    bandit_started = time.perf_counter()
    arms = tuple(BANDIT_RATES)
    thompson, uniform = [], []
    for seed in range(BANDIT_SEEDS):
        thompson.append(
            regret(ThompsonPolicy(arms, np.random.default_rng([SEED, seed, 1])), _world(seed))
        )
        uniform.append(
            regret(UniformPolicy(arms, np.random.default_rng([SEED, seed, 2])), _world(seed))
        )
    ratio = float(np.mean(thompson) / np.mean(uniform))
    if ratio >= REGRET_RATIO_BAR:
        failures.append("bandit regret ratio")
    print()
    print(
        f"Bandit: arms {', '.join(arms)}, {BANDIT_DECISIONS:,} decisions, {BANDIT_SEEDS} seeds "
        "(regret = expected clicks lost against always showing the 6% arm)"
    )
    print(f"{'policy':<10} {'mean regret':>12} {'per seed':>40}")
    for name, values in (("thompson", thompson), ("uniform", uniform)):
        per_seed = " ".join(f"{v:.0f}" for v in values)
        print(f"{name:<10} {np.mean(values):>12.1f} {per_seed:>40}")
    print(f"ratio thompson / uniform = {ratio:.3f} (bar < {REGRET_RATIO_BAR:.3f})")
    print(f"bandit simulation in {time.perf_counter() - bandit_started:.1f} s")
    print(f"total {time.perf_counter() - started:.1f} s")

    if failures:
        print("MISSED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


def _world(seed: int) -> np.random.Generator:
    """The clicks' randomness: the same for both policies of a seed (common random numbers)."""
    return np.random.default_rng([SEED, seed, 0])


if __name__ == "__main__":
    raise SystemExit(main())
