"""Ending a run: one record, one notification, one metric, whichever invocation gets there first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline_common.config import Settings
from pipeline_common.naming import RunRef
from pipeline_common.notifications import notify
from pipeline_common.observability import logger, metrics
from pipeline_common.outcome import Outcome
from pipeline_common.runs import RunsTable, Status

_METRIC = {
    Status.DEPLOYED: "RunsDeployed",
    Status.REJECTED: "RunsRejected",
    Status.INVALID: "DropsRejected",
    Status.FAILED: "RunsFailed",
    Status.STOPPED: "RunsStopped",
}


def conclude(
    settings: Settings,
    runs: RunsTable,
    ref: RunRef,
    status: Status,
    reason: str,
    fields: Mapping[str, Any] | None = None,
) -> Outcome:
    if not runs.finish(ref, status, reason, fields):
        return Outcome("duplicate", ref.model, ref.run_id, "the run had already ended")
    logger.info(
        "run ended",
        extra={"model": ref.model, "run_id": ref.run_id, "status": str(status), "reason": reason},
    )
    metrics.add_metric(name=_METRIC[status], unit="Count", value=1)
    run = runs.get(ref) or {"model": ref.model, "run_id": ref.run_id, "status": status}
    notify(settings.topic_arn, run)
    return Outcome(str(status), ref.model, ref.run_id, reason)
