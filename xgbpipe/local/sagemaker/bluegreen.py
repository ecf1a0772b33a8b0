"""Blue/green updates of the local SageMaker: traffic shifted in steps, each baked under alarms.

As SageMaker's deployment guardrails do: the new (green) fleet takes a share of the traffic, the
rollback alarms are watched for the step's WaitIntervalInSeconds, and an alarm in ALARM sends all
traffic back to the old (blue) fleet. The local SageMaker has no CloudWatch evaluating metrics,
so an alarm counts as firing when CloudWatch (moto) says ALARM (set_alarm_state, as one tests
alarms on AWS) or when the green fleet answered an invocation with an error, which is what the
stack's alarms on Invocation5XXErrors and InvocationModelErrors watch.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xgbpipe.local.sagemaker.serving import ServingModel

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.25


@dataclass
class Bake:
    """A blue/green update in flight: the green fleet, its share of traffic, its errors."""

    green: dict[str, ServingModel]
    share: float = 0.0
    errors: list[str] = field(default_factory=list)

    def takes(self) -> bool:
        """Whether the green fleet answers this invocation."""
        return self.share >= 1.0 or random.random() < self.share  # noqa: S311 - traffic split


def traffic_steps(policy: dict[str, Any], instance_count: int) -> list[tuple[float, int]]:
    """(share of traffic on the green fleet, seconds to bake) per step of the routing."""
    routing = policy["TrafficRoutingConfiguration"]
    wait = int(routing["WaitIntervalInSeconds"])
    kind = routing["Type"]
    if kind == "ALL_AT_ONCE":
        return [(1.0, wait)]
    size = routing["CanarySize" if kind == "CANARY" else "LinearStepSize"]
    step = size["Value"] / (100 if size["Type"] == "CAPACITY_PERCENT" else max(instance_count, 1))
    step = min(step, 1.0)
    if kind == "CANARY":
        return [(step, wait), (1.0, wait)]
    shares = [step]
    while shares[-1] < 1.0:
        shares.append(min(1.0, shares[-1] + step))
    return [(share, wait) for share in shares]


def watch(
    bake: Bake,
    steps: list[tuple[float, int]],
    alarms: list[str],
    alarm_firing: Callable[[list[str]], str | None],
) -> str | None:
    """Shift traffic step by step; the reason to roll back, or None once every step baked."""
    for share, seconds in steps:
        bake.share = share
        deadline = time.monotonic() + seconds
        while True:
            if bake.errors and alarms:
                return f"alarm {alarms[0]} went into ALARM: the new fleet answered {bake.errors[0]}"
            firing = alarm_firing(alarms) if alarms else None
            if firing:
                return f"alarm {firing} went into ALARM"
            if time.monotonic() >= deadline:
                break
            time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    return None
