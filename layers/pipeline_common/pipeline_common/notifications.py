"""One SNS message per terminal state of a run, with its reason and metrics."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline_common import clients

_SUBJECT_LIMIT = 100


def subject(run: Mapping[str, Any]) -> str:
    text = f"xgbpipe: {run.get('model')} run {run.get('run_id')} {run.get('status')}"
    # SNS wants printable ASCII; a rejected drop's folder name may be anything.
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return printable[:_SUBJECT_LIMIT]


def message(run: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "model",
        "run_id",
        "status",
        "reason",
        "metrics",
        "gate",
        "training_job",
        "transform_job",
        "endpoint",
        "endpoint_config",
        "created_at",
        "finished_at",
    )
    return {key: run[key] for key in keys if run.get(key) is not None}


def notify(topic_arn: str, run: Mapping[str, Any]) -> None:
    clients.client("sns").publish(
        TopicArn=topic_arn,
        Subject=subject(run),
        Message=json.dumps(message(run), indent=2, sort_keys=True, default=str),
        MessageAttributes={
            "model": {"DataType": "String", "StringValue": str(run.get("model"))},
            "status": {"DataType": "String", "StringValue": str(run.get("status"))},
        },
    )
