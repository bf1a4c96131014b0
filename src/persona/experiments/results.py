"""The results of one experiment (an `ab` or `thompson` placement version), from the logs.

Units are the merged profile keys of the decision log. Per arm, each unit contributes one row:
whether it clicked, whether it converted and the revenue of its attributed conversions (zero
included), so every test treats the unit, the thing randomized, as the observation. The numbers
come from ``persona.experiments.stats``; docs/experiments.md explains each of them.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from persona.clock import utc
from persona.decide.placements import ARM, CLICK, CONVERSION, HOLDOUT, IMPRESSION
from persona.decide.schema import EXPERIMENT_POLICIES, PlacementBody, experiment_id
from persona.decide.service import DecisionService
from persona.errors import InsufficientDataError, InvalidRequestError, UnknownPlacementError
from persona.experiments import stats
from persona.experiments.schema import (
    ArmResult,
    Comparison,
    CupedOut,
    ExperimentList,
    ExperimentResults,
    ExperimentSummary,
    MeanComparison,
    RateComparison,
    SampleRatio,
    SequentialPath,
)
from persona.privacy.aggregates import MECHANISM, noisy_count
from persona.storage.protocols import DecisionStore, Storage
from persona.storage.records import PlacementRecord, VersionRecord

HOLDOUT_ARM = "holdout"
# The counts of an arm released with noise; epsilon is split evenly over them.
NOISY_COUNTS = ("units", "exposures", "impressions", "clicks", "conversions")
LOOK_UNITS = 100  # the sequential test looks after every 100 units, in order of first exposure


@dataclass
class _Unit:
    first_ms: int
    exposures: int = 0
    impressions: int = 0
    clicked: bool = False
    converted: bool = False
    revenue: float = 0.0


@dataclass
class _Arm:
    name: str
    variant: str | None
    units: dict[str, _Unit] = field(default_factory=dict)

    def conversions(self, metric: str) -> stats.Conversions:
        hits = sum(1 for u in self.units.values() if getattr(u, metric))
        return stats.Conversions(len(self.units), hits)


def parse_experiment_id(value: str) -> tuple[str, int | None]:
    """``name.vN`` -> (name, N); a bare name means its current version."""
    name, dot, version = value.rpartition(".v")
    if dot and version.isdigit():
        return name, int(version)
    return value, None


class ExperimentService:
    def __init__(
        self,
        storage: Storage,
        decisions: DecisionService,
        purchase_types: Collection[str],
        attribution_window_hours: float,
    ) -> None:
        self._storage = storage
        self._decisions = decisions
        self._purchase_types = list(purchase_types)
        self._window_hours = attribution_window_hours

    def all(self) -> ExperimentList:
        found: list[ExperimentSummary] = []
        with self._storage.read() as uow:
            store = uow.decisions
            for record in store.placements().values():
                for version in store.versions(record.name):
                    if version.policy in EXPERIMENT_POLICIES:
                        found.append(self._summary(record, version))
        return ExperimentList(experiments=found)

    def _summary(self, record: PlacementRecord, version: VersionRecord) -> ExperimentSummary:
        config = self._decisions.configs.config_of(record.name, version.version, version.config)
        return ExperimentSummary(
            experiment_id=experiment_id(record.name, version.version),
            placement=record.name,
            version=version.version,
            policy=version.policy,
            current=version.version == record.version,
            status=record.status,
            variants=[v.id for v in config.variants],
            holdout_share=config.holdout_share,
            started_at=utc(version.created_at_ms),
        )

    def _find(
        self, store: DecisionStore, value: str
    ) -> tuple[PlacementRecord, VersionRecord, PlacementBody]:
        name, wanted = parse_experiment_id(value)
        record = store.placements([name]).get(name)
        if record is None:
            raise UnknownPlacementError(f"no experiment {value!r}")
        version = store.version(name, wanted if wanted is not None else record.version)
        if version is None or version.policy not in EXPERIMENT_POLICIES:
            raise UnknownPlacementError(f"no experiment {value!r}")
        config = self._decisions.configs.config_of(name, version.version, version.config)
        return record, version, config

    def results(self, value: str, *, cuped: bool = False) -> ExperimentResults:
        with self._storage.read() as uow:
            store = uow.decisions
            record, version, config = self._find(store, value)
            name = record.name
            arms = _load_arms(store, name, version.version, config)
            bandit = (
                store.all_arm_counts(name, version.version)
                if version.policy == "thompson"
                else None
            )
            control = _control_arm(config)
            pre: dict[str, float] = {}
            if cuped:
                keys = {k for arm in arms.values() for k in arm.units}
                pre = uow.events.value_totals(keys, self._purchase_types, version.created_at_ms)
        return self._analyse(record, version, config, arms, control, bandit, pre if cuped else None)

    def sequential_paths(self, value: str, metric: str = "conversion_rate") -> list[SequentialPath]:
        """For each arm against the control, the sequential test after every look (the
        results give the last one). Arms without units yet, or a control without any, have no
        path."""
        attribute = {"click_rate": "clicked", "conversion_rate": "converted"}.get(metric)
        if attribute is None:
            raise InvalidRequestError("metric: click_rate or conversion_rate")
        with self._storage.read() as uow:
            store = uow.decisions
            _, version, config = self._find(store, value)
            arms = _load_arms(store, version.placement, version.version, config)
        control = arms.get(_control_arm(config))
        if control is None or not control.units:
            return []
        settings = config.experiment
        return [
            _path(control, arm, attribute, metric, settings.confidence, settings.mixing_sd)
            for arm in arms.values()
            if arm is not control and arm.units
        ]

    def _analyse(
        self,
        record: PlacementRecord,
        version: VersionRecord,
        config: PlacementBody,
        arms: dict[str, _Arm],
        control_name: str,
        bandit: dict[str, dict[str, list[float]]] | None,
        pre: dict[str, float] | None,
    ) -> ExperimentResults:
        confidence = config.experiment.confidence
        shares = _configured_shares(config)
        warnings: list[str] = []
        arm_results = [
            _arm_result(arm, arm.name == control_name, shares.get(arm.name))
            for arm in arms.values()
        ]
        control = arms.get(control_name)
        comparisons: list[Comparison] = []
        if control is None or not control.units:
            warnings.append(f"the control arm {control_name!r} has no units yet")
        else:
            for arm in arms.values():
                if arm.name != control_name:
                    comparisons.append(_compare(control, arm, config, pre))
        sample_ratio = None
        if version.policy == "ab":
            sample_ratio = _sample_ratio(arms, shares, config.experiment.srm_threshold)
            if sample_ratio is not None and sample_ratio.mismatch:
                warnings.append(
                    "sample ratio mismatch: the observed split of units departs from the"
                    f" configured weights (p = {sample_ratio.p_value:.2g}); check assignment,"
                    " targeting and logging before reading any other number"
                )
        else:
            warnings.append(
                "thompson allocates adaptively: arms are not randomized at fixed shares, so"
                " the tests below are descriptive; run an ab placement to measure lift"
            )
        return ExperimentResults(
            experiment_id=experiment_id(record.name, version.version),
            placement=record.name,
            version=version.version,
            policy=version.policy,
            started_at=utc(version.created_at_ms),
            confidence=confidence,
            attribution_window_hours=self._window_hours,
            control=control_name,
            arms=arm_results,
            comparisons=comparisons,
            sample_ratio=sample_ratio,
            bandit=bandit,
            warnings=warnings,
        )


def _control_arm(config: PlacementBody) -> str:
    """The holdout when the placement keeps one, else the fallback variant (default: first)."""
    if config.holdout_share > 0:
        return HOLDOUT_ARM
    return config.fallback or config.variants[0].id


def _configured_shares(config: PlacementBody) -> dict[str, float]:
    """Each arm's expected share of units (`ab` only): weights scaled by 1 - holdout."""
    if config.policy != "ab":
        return {}
    total = sum(v.weight for v in config.variants)
    kept = 1.0 - config.holdout_share
    shares = {v.id: kept * v.weight / total for v in config.variants}
    if config.holdout_share > 0:
        shares[HOLDOUT_ARM] = config.holdout_share
    return shares


def _load_arms(
    store: DecisionStore, name: str, version: int, config: PlacementBody
) -> dict[str, _Arm]:
    arms: dict[str, _Arm] = {v.id: _Arm(v.id, v.id) for v in config.variants}
    if config.holdout_share > 0:
        arms[HOLDOUT_ARM] = _Arm(HOLDOUT_ARM, config.fallback)
    for cohort, variant, key, count, first_ms in store.exposures(name, version, [ARM, HOLDOUT]):
        arm = _arm_of(arms, cohort, variant)
        if arm is not None:
            arm.units[key] = _Unit(first_ms, exposures=count)
    outcomes = store.outcome_totals(name, version, [ARM, HOLDOUT])
    for cohort, variant, key, kind, count, total in outcomes:
        arm = _arm_of(arms, cohort, variant)
        unit = arm.units.get(key) if arm is not None else None
        if unit is None:
            continue
        if kind == IMPRESSION:
            unit.impressions += count
        elif kind == CLICK:
            unit.clicked = True
        elif kind == CONVERSION:
            unit.converted = True
            unit.revenue += float(total or 0.0)
    return arms


def _arm_of(arms: dict[str, _Arm], cohort: str, variant: str | None) -> _Arm | None:
    if cohort == HOLDOUT:
        return arms.get(HOLDOUT_ARM)
    return arms.get(variant) if variant is not None else None


def _arm_result(arm: _Arm, control: bool, share: float | None) -> ArmResult:
    units = list(arm.units.values())
    n = len(units)
    clicks = sum(u.clicked for u in units)
    conversions = sum(u.converted for u in units)
    revenue = sum(u.revenue for u in units)
    return ArmResult(
        arm=arm.name,
        variant=arm.variant,
        control=control,
        configured_share=share,
        units=n,
        exposures=sum(u.exposures for u in units),
        impressions=sum(u.impressions for u in units),
        clicks=clicks,
        conversions=conversions,
        click_rate=clicks / n if n else None,
        conversion_rate=conversions / n if n else None,
        revenue=revenue,
        revenue_per_unit=revenue / n if n else None,
    )


def _compare(
    control: _Arm, treatment: _Arm, config: PlacementBody, pre: dict[str, float] | None
) -> Comparison:
    notes: list[str] = []
    settings = config.experiment
    rates: dict[str, RateComparison | None] = {}
    for metric, label in (("clicked", "click_rate"), ("converted", "conversion_rate")):
        try:
            rates[label] = _rate(
                control, treatment, metric, settings.confidence, settings.mixing_sd
            )
        except InsufficientDataError as exc:
            rates[label] = None
            notes.append(f"{label}: {exc.detail}")
    revenue: MeanComparison | None = None
    try:
        revenue = _revenue(control, treatment, settings.confidence, pre)
    except InsufficientDataError as exc:
        notes.append(f"revenue_per_unit: {exc.detail}")
    return Comparison(
        arm=treatment.name,
        click_rate=rates["click_rate"],
        conversion_rate=rates["conversion_rate"],
        revenue_per_unit=revenue,
        notes=notes,
    )


def _rate(
    control: _Arm, treatment: _Arm, metric: str, confidence: float, mixing_sd: float
) -> RateComparison:
    c, t = control.conversions(metric), treatment.conversions(metric)
    fixed = stats.two_proportion_test(c, t, confidence=confidence)
    sequential = stats.sequential_proportion_test(
        *_looks(control, treatment, metric), mixing_sd=mixing_sd, confidence=confidence
    )
    bayes = stats.probability_to_beat_control(c, t)
    return RateComparison(
        control_rate=fixed.control_rate,
        treatment_rate=fixed.treatment_rate,
        absolute_lift=fixed.absolute_lift,
        absolute_lift_ci=fixed.absolute_lift_ci,
        relative_lift=fixed.relative_lift,
        relative_lift_ci=fixed.relative_lift_ci,
        p_value=fixed.p_value,
        sequential_p_value=sequential.p_value,
        sequential_ci=_finite(sequential.ci),
        probability_to_beat_control=bayes.probability_to_beat_control,
    )


def _path(
    control: _Arm, treatment: _Arm, attribute: str, metric: str, confidence: float, mixing_sd: float
) -> SequentialPath:
    """The running values ``stats.sequential_test`` ends with, at every look."""
    c_looks, t_looks = _looks(control, treatment, attribute)
    difference, variance = stats.proportion_difference(
        [c.units for c in c_looks],
        [c.conversions for c in c_looks],
        [t.units for t in t_looks],
        [t.conversions for t in t_looks],
    )
    p_values = stats.always_valid_p_values(difference, variance, mixing_sd=mixing_sd)
    radius = stats.confidence_radius(variance, mixing_sd=mixing_sd, confidence=confidence)
    lower = np.maximum.accumulate(difference - radius)
    upper = np.minimum.accumulate(difference + radius)
    crossed = lower > upper  # as the test does: the look's own interval then
    lower = np.where(crossed, difference - radius, lower)
    upper = np.where(crossed, difference + radius, upper)
    return SequentialPath(
        arm=treatment.name,
        metric=metric,
        units=[c.units + t.units for c, t in zip(c_looks, t_looks, strict=True)],
        difference=[float(x) for x in difference],
        p_value=[float(x) for x in p_values],
        lower=[float(x) if math.isfinite(x) else None for x in lower],
        upper=[float(x) if math.isfinite(x) else None for x in upper],
    )


def _finite(interval: tuple[float, float]) -> tuple[float, float] | None:
    return interval if all(math.isfinite(x) for x in interval) else None


def _looks(
    control: _Arm, treatment: _Arm, metric: str
) -> tuple[list[stats.Conversions], list[stats.Conversions]]:
    """Cumulative counts of both arms after every ``LOOK_UNITS`` units, by first exposure."""
    entries = sorted(
        [(u.first_ms, 0, getattr(u, metric)) for u in control.units.values()]
        + [(u.first_ms, 1, getattr(u, metric)) for u in treatment.units.values()]
    )
    arm = np.asarray([e[1] for e in entries], dtype=np.int64)
    hit = np.asarray([e[2] for e in entries], dtype=np.int64)
    ends = [*range(LOOK_UNITS, len(entries), LOOK_UNITS), len(entries)]
    n_t = np.cumsum(arm)
    x_t = np.cumsum(arm * hit)
    x_all = np.cumsum(hit)
    c_looks, t_looks = [], []
    for end in ends:
        i = end - 1
        nt, xt = int(n_t[i]), int(x_t[i])
        c_looks.append(stats.Conversions(end - nt, int(x_all[i]) - xt))
        t_looks.append(stats.Conversions(nt, xt))
    return c_looks, t_looks


def _revenue(
    control: _Arm, treatment: _Arm, confidence: float, pre: dict[str, float] | None
) -> MeanComparison:
    y_c = [u.revenue for u in control.units.values()]
    y_t = [u.revenue for u in treatment.units.values()]
    test = stats.welch_test(
        stats.MeanSummary.from_values(y_c),
        stats.MeanSummary.from_values(y_t),
        confidence=confidence,
    )
    adjusted: CupedOut | None = None
    if pre is not None:
        x_c = [pre.get(k, 0.0) for k in control.units]
        x_t = [pre.get(k, 0.0) for k in treatment.units]
        result = stats.cuped_test(
            stats.CovariateSummary.from_values(y_c, x_c),
            stats.CovariateSummary.from_values(y_t, x_t),
            confidence=confidence,
        )
        adjusted = CupedOut(
            theta=result.theta,
            variance_reduction=result.variance_reduction,
            control_mean=result.control_mean,
            treatment_mean=result.treatment_mean,
            difference=result.test.difference,
            difference_ci=result.test.difference_ci,
            p_value=result.test.p_value,
        )
    return MeanComparison(
        control_mean=test.control_mean,
        treatment_mean=test.treatment_mean,
        difference=test.difference,
        difference_ci=test.difference_ci,
        relative_difference=test.relative_difference,
        p_value=test.p_value,
        cuped=adjusted,
    )


def _sample_ratio(
    arms: dict[str, _Arm], shares: dict[str, float], threshold: float
) -> SampleRatio | None:
    names = [name for name in shares if name in arms]
    observed = [len(arms[name].units) for name in names]
    if len(names) < 2 or sum(observed) == 0:
        return None
    check = stats.sample_ratio_check(observed, [shares[n] for n in names], threshold=threshold)
    return SampleRatio(
        arms=names,
        observed=list(check.observed),
        expected=list(check.expected),
        chi_square=check.chi_square if math.isfinite(check.chi_square) else 1e308,
        p_value=check.p_value,
        threshold=check.threshold,
        mismatch=check.mismatch,
    )


def with_noisy_counts(results: ExperimentResults, epsilon: float) -> ExperimentResults:
    """The results with differentially private counts, for sharing beyond the team.

    Each arm's counts get Laplace noise through the mechanism of noisy segment sizes, with
    ``epsilon`` split evenly over them: a unit served one arm once moves each count by at most
    one, so that arm's release is ``epsilon``-differentially private for it (units served many
    times or several arms spend more). Rounding, clamping at zero and the rates are computed
    from the noisy counts only (post-processing costs no privacy). Everything derived from the
    exact data — comparisons, sample ratio, bandit state, revenue, data-driven warnings — is
    withheld: revenue has no bounded sensitivity, and the tests would leak the exact counts.
    """
    share = epsilon / len(NOISY_COUNTS)
    arms = []
    for arm in results.arms:
        counts = {name: round(noisy_count(getattr(arm, name), share)) for name in NOISY_COUNTS}
        units = counts["units"]
        arms.append(
            arm.model_copy(
                update={
                    **counts,
                    "click_rate": min(1.0, counts["clicks"] / units) if units else None,
                    "conversion_rate": min(1.0, counts["conversions"] / units) if units else None,
                    "revenue": None,
                    "revenue_per_unit": None,
                }
            )
        )
    note = (
        f"counts carry Laplace noise (epsilon {epsilon:g}, split over {len(NOISY_COUNTS)} counts"
        " per arm); comparisons, sample ratio, bandit state and revenue are withheld"
    )
    return results.model_copy(
        update={
            "arms": arms,
            "comparisons": [],
            "sample_ratio": None,
            "bandit": None,
            "warnings": [note],
            "noisy": True,
            "epsilon": epsilon,
            "mechanism": MECHANISM,
        }
    )
