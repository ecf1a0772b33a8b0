"""Decide whether a freshly evaluated model may replace the live one.

A challenger passes when its primary metric meets the configured threshold (if any) and is no
worse than the live model's (a tie passes, so retraining on the same data redeploys). The reason
is a sentence with the numbers, written for the run record and the notification.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline_common.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC
from pipeline_common.problem import ProblemType


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    metric: str
    value: float
    threshold: float | None
    live_value: float | None


def decide(
    problem: ProblemType,
    metrics: Mapping[str, float],
    threshold: float | None,
    live_metrics: Mapping[str, float] | None,
) -> GateDecision:
    """Judge `metrics` on the problem's primary metric against the threshold and the live model."""
    metric = PRIMARY_METRIC[problem]
    higher_is_better = HIGHER_IS_BETTER[metric]
    # float() also turns DynamoDB's Decimals into the very doubles they were stored from, so a
    # retrained model with the same score ties instead of losing by a rounding error.
    value = float(metrics.get(metric, math.nan))
    threshold = None if threshold is None else float(threshold)
    live = None if live_metrics is None else live_metrics.get(metric)
    live_value = None if live is None else float(live)

    def decision(passed: bool, reason: str) -> GateDecision:
        return GateDecision(passed, reason, metric, value, threshold, live_value)

    if math.isnan(value):
        return decision(
            False, f"The evaluation produced no {metric}, so the model cannot be judged."
        )

    def worse(than: float) -> bool:
        return value < than if higher_is_better else value > than

    if threshold is not None and worse(threshold):
        shown, bar = _pair(value, threshold)
        limit = "the least required" if higher_is_better else "the most allowed"
        return decision(False, f"{metric} {shown} is worse than the threshold of {bar} ({limit}).")
    if threshold is None:
        verdict = f"{metric} is {_pair(value, live_value)[0]} (no threshold is set)"
    else:
        verdict = f"{metric} {_pair(value, threshold)[0]} meets the threshold {_format(threshold)}"
    if live_metrics is None:
        return decision(True, f"{verdict}, and there is no live model yet.")
    if live_value is None or math.isnan(live_value):
        return decision(
            True,
            f"{verdict}; the live model has no {metric} (it was trained with an objective of "
            "another kind), so only the threshold applies.",
        )
    shown, live_shown = _pair(value, live_value)
    if worse(live_value):
        return decision(False, f"{metric} {shown} is worse than the live model's {live_shown}.")
    comparison = "equals" if value == live_value else "is better than"
    return decision(True, f"{verdict}, and it {comparison} the live model's {live_shown}.")


def missed_bar(metrics: Mapping[str, float], bars: Mapping[str, float]) -> GateDecision | None:
    """The first metric that misses its bar (pipeline.json's "gate"), or None when all meet it."""
    for metric, bar in bars.items():
        value = float(metrics.get(metric, math.nan))
        higher_is_better = HIGHER_IS_BETTER[metric]
        if math.isnan(value):
            reason = f"The evaluation produced no {metric}, which pipeline.json sets a bar for."
        elif (value < bar) if higher_is_better else (value > bar):
            shown, bar_shown = _pair(value, float(bar))
            limit = "the least required" if higher_is_better else "the most allowed"
            reason = f"{metric} {shown} misses the bar of {bar_shown} ({limit}) in pipeline.json."
        else:
            continue
        return GateDecision(False, reason, metric, value, float(bar), None)
    return None


def _format(number: float) -> str:
    return f"{number:.4g}"


def _pair(value: float, other: float | None) -> tuple[str, str]:
    """Both numbers with enough digits to tell them apart: 2.31 vs 2.12, 0.9001 vs 0.9002."""
    if other is None:
        return _format(value), ""
    for digits in range(4, 18):
        shown, other_shown = f"{value:.{digits}g}", f"{other:.{digits}g}"
        if shown != other_shown or value == other:
            return shown, other_shown
    return repr(value), repr(other)
