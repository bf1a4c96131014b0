"""What clients read about experiments: the list, and the results of one (docs/experiments.md)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

Interval = tuple[float, float]


class ExperimentSummary(BaseModel):
    experiment_id: str = Field(description="`placement.vVERSION`.")
    placement: str
    version: int
    policy: str
    current: bool = Field(description="Whether this version is the one deciding now.")
    status: str = Field(description="The placement's status: `active` or `paused`.")
    variants: list[str]
    holdout_share: float
    started_at: datetime


class ExperimentList(BaseModel):
    experiments: list[ExperimentSummary]


class ArmResult(BaseModel):
    arm: str = Field(description="A variant id, or `holdout`.")
    variant: str | None = Field(description="The variant the arm was served.")
    control: bool
    configured_share: float | None = Field(description="`ab`: share of units it should get.")
    units: int = Field(description="Distinct units served this arm at least once.")
    exposures: int = Field(description="Decisions that served this arm.")
    impressions: int = Field(description="Attributed impression events.")
    clicks: int = Field(description="Units with at least one attributed click.")
    conversions: int = Field(description="Units with at least one attributed conversion.")
    click_rate: float | None
    conversion_rate: float | None
    revenue: float | None = Field(
        description="Sum of the values of attributed conversions (withheld when `noisy`)."
    )
    revenue_per_unit: float | None


class RateComparison(BaseModel):
    control_rate: float
    treatment_rate: float
    absolute_lift: float
    absolute_lift_ci: Interval
    relative_lift: float | None
    relative_lift_ci: Interval | None
    p_value: float = Field(description="Two-proportion z-test, two-sided, fixed horizon.")
    sequential_p_value: float | None = Field(
        description="mSPRT always-valid p-value: may be read at any time."
    )
    sequential_ci: Interval | None = Field(description="Confidence sequence of the difference.")
    probability_to_beat_control: float | None


class CupedOut(BaseModel):
    theta: float
    variance_reduction: float
    control_mean: float
    treatment_mean: float
    difference: float
    difference_ci: Interval
    p_value: float


class MeanComparison(BaseModel):
    control_mean: float
    treatment_mean: float
    difference: float
    difference_ci: Interval
    relative_difference: float | None
    p_value: float = Field(description="Welch's t-test, two-sided.")
    cuped: CupedOut | None = None


class Comparison(BaseModel):
    arm: str
    click_rate: RateComparison | None
    conversion_rate: RateComparison | None
    revenue_per_unit: MeanComparison | None
    notes: list[str] = Field(description="Why a number is missing (not enough data, ...).")


class SampleRatio(BaseModel):
    arms: list[str]
    observed: list[int]
    expected: list[float]
    chi_square: float
    p_value: float
    threshold: float
    mismatch: bool


class ExperimentResults(BaseModel):
    experiment_id: str
    placement: str
    version: int
    policy: str
    started_at: datetime
    confidence: float
    attribution_window_hours: float
    control: str = Field(description="The arm every other arm is compared with.")
    arms: list[ArmResult]
    comparisons: list[Comparison]
    sample_ratio: SampleRatio | None
    bandit: dict[str, dict[str, list[float]]] | None = Field(
        description="`thompson`: successes and failures per bucket and arm."
    )
    warnings: list[str]
    noisy: bool = Field(
        default=False,
        description="Whether the arms' counts carry Laplace noise (differential privacy); the"
        " comparisons, sample ratio, bandit state and revenue are then withheld.",
    )
    epsilon: float | None = Field(
        default=None, description="`noisy`: the privacy loss, split evenly over an arm's counts."
    )
    mechanism: str | None = Field(default=None, description="`noisy`: the noise, `laplace`.")


class SequentialPath(BaseModel):
    """The always-valid test of one arm against the control after each look (every 100 units,
    in order of first exposure): how the sequential p-value and the confidence sequence
    moved. The last look is what the results report."""

    arm: str
    metric: str = Field(description="`click_rate` or `conversion_rate`.")
    units: list[int] = Field(description="Units of both arms at each look.")
    difference: list[float] = Field(description="Treatment rate less control rate.")
    p_value: list[float] = Field(description="The always-valid p-value (never rises).")
    lower: list[float | None] = Field(
        description="The confidence sequence's lower bound (null while unbounded)."
    )
    upper: list[float | None]
